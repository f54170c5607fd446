import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { openCluster } from "../src/cluster/open-cluster.js";
import type { ClusterHandle } from "../src/cluster/open-cluster.js";
import type { WorkItem } from "../src/cluster/work-queue.js";
import { readSubject } from "../src/cluster/direct-read.js";
import { kRecordKindHeader } from "../src/cluster/output-log.js";
import { kSkipWithoutNats, TestNatsServer } from "./helpers/nats-server.js";
import { WorkerChild } from "./helpers/cluster-child.js";
import { eventually, sleep } from "./helpers/server.js";

const kLeaseMs = 1_500;

describe("cluster: fencing a paused owner", { skip: kSkipWithoutNats }, () => {
  let nats: TestNatsServer;
  let h: ClusterHandle;
  before(async () => {
    nats = await TestNatsServer.start();
    h = await openCluster({ servers: nats.url, prefix: "f", leaseMs: kLeaseMs });
  });
  after(async () => {
    await h?.close();
    await nats?.stop();
  });

  it("an owner SIGSTOPped past its lease is taken over; woken, its output is refused by the server and it drops the stream", async () => {
    const child = new WorkerChild(nats.url, "f", "fence", "old-owner", kLeaseMs, 1);
    try {
      await eventually(() => child.find("ready"), 15_000, `child ready: ${child.stderr}`);
      await h.work.publishOpen("fence", "p.1");
      await eventually(() => child.find("owned", "p.1"), 10_000, "child owns p.1");
      child.send({ cmd: "write", streamId: "p.1", n: 1 });
      await eventually(() => child.find("wrote", "p.1"), 5_000, "child wrote output 1");

      // One slot: while the child holds p.1 it pulls nothing, so the redelivery can only reach the successor.
      child.signal("SIGSTOP");
      const got: WorkItem[] = [];
      const loop = await h.work.startLoop({ fn: "fence", slots: 5, onItem: (i) => got.push(i) });
      await eventually(() => got.length === 1, kLeaseMs * 10, "the paused owner's item redelivered");
      const item = got[0]!;
      assert.ok(item.redelivered);
      const claim = await h.owners.acquire("fence", "p.1", "successor");
      assert.equal(claim?.epoch, 2);
      const writer = await h.outputs.fence("fence", "p.1", { worker: "successor", epoch: claim!.epoch });
      assert.equal(writer.delivered, 1, "the successor learns output 1 was delivered");
      let successorLost = false;
      item.keepLease(() => h.owners.holds("fence", "p.1", claim!), () => (successorLost = true));
      // Replay regenerates output 1 (dropped by number), then carries on.
      assert.equal((await writer.write(1, JSON.stringify({ from: "successor", n: 1 }))).dropped, true);
      await writer.write(2, JSON.stringify({ from: "successor", n: 2 }));

      child.signal("SIGCONT");
      // The same number the successor just wrote: neither stored nor taken for a duplicate.
      child.send({ cmd: "write", streamId: "p.1", n: 2 });
      const dropped = await eventually(() => child.find("dropped", "p.1"), 10_000, "child reports the drop").catch((e: unknown) => assert.fail(`${String(e)}: ${JSON.stringify(child.reports)} ${child.stderr}`));
      assert.equal(dropped.code, "STREAM_FENCED");
      assert.equal(child.find("wrote", "p.1")?.n, 1, "the child wrote nothing after its pause");

      await writer.write(3, JSON.stringify({ from: "successor", n: 3 }));
      await writer.end(JSON.stringify({ from: "successor", end: true }));
      await item.done();

      // The output subject: the old owner's fence and output 1, the successor's fence, then only the successor.
      const records: { kind: string; body: Record<string, unknown> }[] = [];
      for await (const m of readSubject(h.cluster.jsm, h.cluster.settings.names.outputs, h.outputs.subject("fence", "p.1"))) {
        records.push({ kind: m.header!.get(kRecordKindHeader), body: m.json() });
      }
      const fenceAt = records.findIndex((r) => r.kind === "fence" && r.body.worker === "successor");
      assert.ok(fenceAt > 0, JSON.stringify(records));
      const afterFence = records.slice(fenceAt + 1);
      assert.deepEqual(
        afterFence.map((r) => `${r.kind}:${String(r.body.from)}`),
        ["output:successor", "output:successor", "end:successor"],
      );
      assert.deepEqual(
        records.slice(0, fenceAt).map((r) => `${r.kind}:${String(r.body.worker ?? r.body.from)}`),
        ["fence:old-owner", "output:old-owner"],
      );
      // The woken owner also stops renewing: it saw the owner record change.
      await eventually(() => child.find("lease-lost", "p.1") ?? child.find("dropped", "p.1"), 5_000, "child stopped renewing");
      assert.equal(successorLost, false, `the successor kept its claim: ${JSON.stringify(child.reports)}`);
      await sleep(100);
      await loop.stop();
    } finally {
      await child.kill();
    }
  });
});
