import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { openCluster } from "../src/cluster/open-cluster.js";
import type { ClusterHandle } from "../src/cluster/open-cluster.js";
import type { WorkItem } from "../src/cluster/work-queue.js";
import { workConsumerName } from "../src/cluster/names.js";
import { kSkipWithoutNats, TestNatsServer } from "./helpers/nats-server.js";
import { WorkerChild } from "./helpers/cluster-child.js";
import { eventually, sleep } from "./helpers/server.js";

const kLeaseMs = 1_500;

describe("cluster: work queue and leases", { skip: kSkipWithoutNats }, () => {
  let nats: TestNatsServer;
  let gateway: ClusterHandle;
  const extra: ClusterHandle[] = [];
  before(async () => {
    nats = await TestNatsServer.start();
    gateway = await openCluster({ servers: nats.url, prefix: "w", leaseMs: kLeaseMs });
  });
  after(async () => {
    for (const h of extra) await h.close();
    await gateway?.close();
    await nats?.stop();
  });

  async function worker(): Promise<ClusterHandle> {
    const h = await openCluster({ servers: nats.url, prefix: "w", leaseMs: kLeaseMs });
    extra.push(h);
    return h;
  }

  async function pending(fn: string): Promise<number> {
    const info = await gateway.cluster.jsm.consumers.info(gateway.cluster.settings.names.work, workConsumerName(fn));
    return info.num_pending;
  }

  it("two workers take items from one function's queue only while they have free slots", async () => {
    const [wa, wb] = [await worker(), await worker()];
    const held: Record<"a" | "b", WorkItem[]> = { a: [], b: [] };
    const keep = (item: WorkItem): void => item.keepLease(async () => true, () => {});
    const la = await wa.work.startLoop({ fn: "slots", slots: 2, onItem: (i) => (keep(i), held.a.push(i)) });
    const lb = await wb.work.startLoop({ fn: "slots", slots: 3, onItem: (i) => (keep(i), held.b.push(i)) });
    for (let i = 0; i < 10; i++) await gateway.work.publishOpen("slots", `s${i}`);
    await gateway.work.publishOpen("slots", "s0"); // a retried open: deduplicated
    await eventually(() => held.a.length === 2 && held.b.length === 3, 10_000, "both workers full");
    await eventually(async () => (await pending("slots")) === 5, 5_000, "5 items left in the queue");
    await sleep(kLeaseMs * 2); // renewals keep them; full workers pull nothing more
    assert.equal(held.a.length, 2);
    assert.equal(held.b.length, 3);
    assert.equal(await pending("slots"), 5);
    // Two streams on worker a end: it takes exactly two more.
    await held.a[0]!.done();
    await held.a[1]!.done();
    await eventually(() => held.a.length === 4, 10_000, "worker a refilled");
    await eventually(async () => (await pending("slots")) === 3, 5_000, "3 items left");
    assert.equal(held.b.length, 3);
    const ids = [...held.a, ...held.b].map((i) => i.streamId).sort();
    assert.equal(new Set(ids).size, 7, `no item given twice: ${ids.join(",")}`);
    assert.ok([...held.a, ...held.b].every((i) => !i.redelivered));
    await la.stop();
    await lb.stop();
    for (const i of [...held.a, ...held.b]) i.drop();
  });

  it("a stream redelivered to the worker that still holds it (stalled past the lease) supersedes the stale holder", async () => {
    const w = await worker();
    const got: WorkItem[] = [];
    let lost = 0;
    const loop = await w.work.startLoop({ fn: "stall", slots: 2, onItem: (i) => got.push(i) });
    await gateway.work.publishOpen("stall", "st.1");
    await eventually(() => got.length === 1, 10_000, "first delivery");
    // Renewals that think ownership is fine but never reach the server (a stalled process).
    got[0]!.keepLease(() => new Promise<boolean>(() => {}), () => lost++);
    await eventually(() => got.length === 2, kLeaseMs * 10, "second delivery to the same worker");
    assert.equal(got[1]!.redelivered, true);
    assert.equal(got[1]!.streamId, "st.1");
    assert.equal(got[0]!.finished, true);
    assert.equal(lost, 1, "the stale holder is told");
    assert.equal(loop.active, 1, "one slot in use, not two");
    await got[1]!.done();
    await loop.stop();
  });

  it("an item held by a SIGKILLed worker goes to another after about the lease, not while the holder lives", async () => {
    const child = new WorkerChild(nats.url, "w", "kill", "child-1", kLeaseMs, 5);
    try {
      await eventually(() => child.find("ready"), 15_000, `child ready: ${child.stderr}`);
      await gateway.work.publishOpen("kill", "k.1");
      await eventually(() => child.find("owned", "k.1"), 10_000, "child owns k.1");
      const successor = await worker();
      const got: WorkItem[] = [];
      const loop = await successor.work.startLoop({ fn: "kill", slots: 5, onItem: (i) => got.push(i) });
      await sleep(kLeaseMs * 2.5);
      assert.equal(got.length, 0, "a live holder's renewals keep its item");
      const killedAt = Date.now();
      await child.kill();
      await eventually(() => got.length === 1, kLeaseMs * 10, "redelivery to the successor");
      const waited = Date.now() - killedAt;
      // The server's timer ran from the holder's last renewal (at most lease/3 before the kill).
      assert.ok(waited >= (kLeaseMs * 2) / 3 - 100, `redelivered ${waited} ms after the kill, lease ${kLeaseMs} ms`);
      const item = got[0]!;
      assert.equal(item.streamId, "k.1");
      assert.ok(item.redelivered);
      const claim = await successor.owners.acquire("kill", "k.1", "successor");
      assert.equal(claim?.epoch, 2);
      assert.deepEqual(claim?.previous, { worker: "child-1", epoch: 1 });
      await item.done();
      await loop.stop();
    } finally {
      await child.kill();
    }
  });
});
