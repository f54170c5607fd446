import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { StreamfnError } from "../src/api/errors.js";
import { connectCluster } from "../src/cluster/connect.js";
import { openCluster } from "../src/cluster/open-cluster.js";
import type { ClusterHandle } from "../src/cluster/open-cluster.js";
import { OrderedFeed } from "../src/cluster/ordered-feed.js";
import type { FeedRecord } from "../src/cluster/ordered-feed.js";
import { bucketKeys } from "../src/cluster/kv-keys.js";
import { Kvm } from "@nats-io/kv";
import { CuttableProxy } from "./helpers/cuttable-proxy.js";
import { kPositionHeader, positionOf } from "../src/cluster/event-log.js";
import { FencedError } from "../src/cluster/output-log.js";
import { AckTimeoutError, AckedPublisher, PublishRefusedError, kExpectedLastSubjectSeqHeader } from "../src/cluster/acked-publish.js";
import { freePort, kSkipWithoutNats, TestNatsServer } from "./helpers/nats-server.js";
import { eventually } from "./helpers/server.js";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

describe("cluster: connect", { skip: kSkipWithoutNats }, () => {
  it("a refused connection fails fast with CLUSTER_UNREACHABLE naming the server", async () => {
    const port = await freePort();
    const err = await connectCluster({ servers: `nats://127.0.0.1:${port}`, timeoutMs: 2_000 }).catch((e: unknown) => e);
    assert.ok(err instanceof StreamfnError, String(err));
    assert.equal(err.code, "CLUSTER_UNREACHABLE");
    assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
  });

  it("refused credentials fail with CLUSTER_AUTH_FAILED", async () => {
    const nats = await TestNatsServer.start(["--auth", "s3cret"]);
    try {
      const err = await connectCluster({ servers: nats.url, token: "wrong", timeoutMs: 3_000 }).catch((e: unknown) => e);
      assert.ok(err instanceof StreamfnError, String(err));
      assert.equal(err.code, "CLUSTER_AUTH_FAILED");
      assert.match(err.message, new RegExp(String(nats.port)));
      const nc = await connectCluster({ servers: nats.url, token: "s3cret" });
      await nc.close();
    } finally {
      await nats.stop();
    }
  });
});

describe("cluster: acknowledged publishes", { skip: kSkipWithoutNats }, () => {
  it("resolves with the stored sequence, refuses with JetStream's error code, and times out when no acknowledgement comes", async () => {
    const nats = await TestNatsServer.start();
    const h = await openCluster({ servers: nats.url, prefix: "ack", leaseMs: 2_000 });
    const p = new AckedPublisher(h.cluster.nc, 10_000);
    const quick = new AckedPublisher(h.cluster.nc, 300);
    try {
      const subject = h.events.subject("f", "s1");
      const acks = await Promise.all([1, 2, 3].map((i) => p.publish(subject, enc(String(i)))));
      assert.deepEqual(acks.map((a) => a.stream), [h.cluster.settings.names.events, h.cluster.settings.names.events, h.cluster.settings.names.events]);
      assert.ok(acks[0]!.seq < acks[1]!.seq && acks[1]!.seq < acks[2]!.seq, "in order");

      const hdr = natsHeaders();
      hdr.set(kExpectedLastSubjectSeqHeader, "1");
      const wrong = await p.publish(subject, enc("4"), hdr).catch((e: unknown) => e);
      assert.ok(wrong instanceof PublishRefusedError, String(wrong));
      assert.equal(wrong.code, 10071, wrong.message);

      const none = await p.publish("nothing.stores.this", enc("x")).catch((e: unknown) => e);
      assert.ok(none instanceof PublishRefusedError, String(none));
      assert.match(none.message, /nothing\.stores\.this/);

      // A stopped server answers nothing: the publish fails after the timeout instead of hanging.
      process.kill(nats.pid!, "SIGSTOP");
      try {
        // kill() returns before a busy machine has stopped every thread of the server.
        for (const t0 = Date.now(); Date.now() - t0 < 5_000; await new Promise((r) => setTimeout(r, 10))) {
          const state = readFileSync(`/proc/${nats.pid}/stat`, "utf8").replace(/^.*\) /s, "")[0];
          if (state === "T" || state === "t") break;
        }
        const late = await quick.publish(subject, enc("5")).catch((e: unknown) => e);
        assert.ok(late instanceof AckTimeoutError, String(late));
        assert.equal(quick.pending, 0);
      } finally {
        process.kill(nats.pid!, "SIGCONT");
      }
    } finally {
      p.close();
      quick.close();
      await h.close();
      await nats.stop();
    }
  });
});

/** A feed of stream `id` of function echo's events, read from the first position through `c`. */
function eventFeed(c: ClusterHandle, id: string, onRecord: (r: FeedRecord) => void, onError: (err: StreamfnError) => void): OrderedFeed {
  return new OrderedFeed({
    nc: c.cluster.nc,
    jsm: c.cluster.jsm,
    stream: c.cluster.settings.names.events,
    subject: c.events.subject("echo", id),
    positionOf,
    from: 1,
    onRecord,
    onError,
  });
}

describe("cluster: event and output logs", { skip: kSkipWithoutNats }, () => {
  let nats: TestNatsServer;
  let h: ClusterHandle;
  before(async () => {
    nats = await TestNatsServer.start();
    // Several processes start at once: ensureCluster must be idempotent under a race.
    const all = await Promise.all([1, 2, 3].map(() => openCluster({ servers: nats.url, prefix: "t1", leaseMs: 2_000 })));
    h = all[0]!;
    for (const other of all.slice(1)) await other.close();
    // And again with another lease: the consumer and streams are updated, not duplicated.
    const again = await openCluster({ servers: nats.url, prefix: "t1", leaseMs: 2_000 });
    await again.close();
  });
  after(async () => {
    await h?.close();
    await nats?.stop();
  });

  it("a feed whose connection was down while its last records were stored catches up after the reconnect", async () => {
    // One client reaches the server through a proxy this test can cut; the writer goes direct.
    const proxy = await CuttableProxy.start(nats.port);
    const reader = await openCluster({ servers: `nats://127.0.0.1:${proxy.port}`, prefix: "t1", leaseMs: 2_000 });
    try {
      const got: string[] = [];
      const feed = eventFeed(reader, "cut", (r) => got.push(dec(r.data)), (err) => assert.fail(err));
      feed.start();
      await h.events.append("echo", "cut", 1, enc("e1"));
      await eventually(() => got.length === 1, 5_000, "the first record live");
      proxy.cut();
      // Stored while the reader is away: nothing live will ever follow them.
      for (let p = 2; p <= 4; p++) await h.events.append("echo", "cut", p, enc(`e${p}`));
      proxy.restore();
      await eventually(() => got.length === 4, 15_000, "the records stored while disconnected");
      assert.deepEqual(got, ["e1", "e2", "e3", "e4"]);
      feed.close();
    } finally {
      await reader.close();
      await proxy.close();
    }
  });

  it("a read of the store that fails while the connection is down is tried again, not fatal to the feed", async () => {
    const proxy = await CuttableProxy.start(nats.port);
    const reader = await openCluster({ servers: `nats://127.0.0.1:${proxy.port}`, prefix: "t1", leaseMs: 2_000 });
    try {
      await h.events.append("echo", "down", 1, enc("e1"));
      proxy.cut();
      const got: string[] = [];
      const errors: unknown[] = [];
      const feed = eventFeed(reader, "down", (r) => got.push(dec(r.data)), (err) => errors.push(err));
      // Its first read of the store goes out on a connection that is down: past the client's
      // request timeout (5 s) it has failed at least once.
      feed.start();
      await new Promise((r) => setTimeout(r, 6_000));
      assert.deepEqual(errors, [], "a failed read does not fail the feed");
      proxy.restore();
      await eventually(() => got.length === 1, 15_000, "the stored record, once the connection is back");
      assert.deepEqual(got, ["e1"]);
      assert.deepEqual(errors, []);
      feed.close();
    } finally {
      await reader.close();
      await proxy.close();
    }
  });

  it("lists a KV bucket's keys in one request: none, then every key, deleted ones included", async () => {
    const kv = await new Kvm(h.cluster.nc).create(`t1-keys-${Date.now()}`, { history: 1 });
    assert.deepEqual(await bucketKeys(kv), []);
    await kv.put("w.one", "1");
    await kv.put("w.two", "2");
    await kv.put("w.two", "2 again");
    await kv.delete("w.one");
    assert.deepEqual((await bucketKeys(kv)).sort(), ["w.one", "w.two"]);
    assert.equal((await kv.get("w.one"))?.operation, "DEL");
    await kv.destroy();
  });

  it("a retried append is stored once (server dedup by message id)", async () => {
    const a = await h.events.append("echo", "s.dup", 1, enc("one"));
    const b = await h.events.append("echo", "s.dup", 1, enc("one"));
    assert.equal(a.duplicate, false);
    assert.equal(b.duplicate, true);
    assert.equal(b.seq, a.seq);
    const read = [];
    for await (const e of h.events.read("echo", "s.dup")) read.push(e.position);
    assert.deepEqual(read, [1]);
  });

  it("appends wait for room in the in-flight window: never more than maxInFlight await their acks", async () => {
    const small = await openCluster({ servers: nats.url, prefix: "t1", eventLog: { maxInFlight: 4 } });
    try {
      let peak = 0;
      const all = [];
      for (let p = 1; p <= 60; p++) {
        all.push(small.events.append("echo", "windowed", p, enc(`w${p}`)));
        peak = Math.max(peak, small.events.inFlight);
      }
      await Promise.all(all);
      assert.equal(peak, 4);
      assert.equal(small.events.inFlight, 0);
      let count = 0;
      for await (const _ of small.events.read("echo", "windowed")) count++;
      assert.equal(count, 60);
    } finally {
      await small.close();
    }
  });

  it("reads a stream's events back in order from any position, without other streams' events", async () => {
    const appends = [];
    for (let p = 1; p <= 50; p++) {
      appends.push(h.events.append("echo", "a.b.c", p, enc(`a${p}`)));
      appends.push(h.events.append("echo", "other", p, enc(`o${p}`)));
    }
    await Promise.all(appends);
    for (const from of [1, 17, 50]) {
      const got: string[] = [];
      const feed = new OrderedFeed({
        nc: h.cluster.nc,
        jsm: h.cluster.jsm,
        stream: h.cluster.settings.names.events,
        subject: h.events.subject("echo", "a.b.c"),
        positionOf,
        from,
        onRecord: (r) => got.push(dec(r.data)),
        onError: (err) => assert.fail(err),
      });
      feed.start();
      await eventually(() => got.length === 51 - from, 5_000, `events from ${from}`);
      feed.close();
      assert.deepEqual(got, Array.from({ length: 51 - from }, (_, i) => `a${i + from}`));
    }
    assert.equal(await h.events.purge("echo", "a.b.c"), 50);
    const left = [];
    for await (const e of h.events.read("echo", "a.b.c")) left.push(e);
    assert.equal(left.length, 0);
  });

  it("backfills a gap: live events past a missing position wait until it is stored, then all arrive in order", async () => {
    const got: number[] = [];
    const errors: unknown[] = [];
    const feed = new OrderedFeed({
      nc: h.cluster.nc,
      jsm: h.cluster.jsm,
      stream: h.cluster.settings.names.events,
      subject: h.events.subject("echo", "gappy"),
      positionOf,
      from: 1,
      onRecord: (r) => got.push(r.position),
      onError: (err) => errors.push(err),
    });
    feed.start();
    await h.events.append("echo", "gappy", 1, enc("1"));
    await h.events.append("echo", "gappy", 2, enc("2"));
    await eventually(() => got.length === 2, 5_000, "first two events");
    feed.close();
    // A new owner follows from position 3. Then 4 and 5 are stored before 3 (3's append was
    // retried and lands late): 4 is read back, 5 seen live, and neither may be delivered first.
    const js = jetstream(h.cluster.nc);
    const hdr = natsHeaders();
    hdr.set(kPositionHeader, "3");
    const got2: number[] = [];
    const feed2 = new OrderedFeed({
      nc: h.cluster.nc,
      jsm: h.cluster.jsm,
      stream: h.cluster.settings.names.events,
      subject: h.events.subject("echo", "gappy"),
      positionOf,
      from: 3,
      onRecord: (r) => got2.push(r.position),
      onError: (err) => errors.push(err),
    });
    await h.events.append("echo", "gappy", 4, enc("4"));
    feed2.start();
    await h.events.append("echo", "gappy", 5, enc("5"));
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(got2, [], "nothing is delivered past the gap");
    await js.publish(h.events.subject("echo", "gappy"), enc("3"), { headers: hdr, msgID: "echo/gappy/3" });
    await eventually(() => got2.length === 3, 5_000, "gap filled");
    feed2.close();
    assert.deepEqual(got2, [3, 4, 5]);
    assert.deepEqual(errors, []);
  });

  it("a gap that never fills fails the feed with CLUSTER_ERROR after the gap timeout", async () => {
    await h.events.append("echo", "holey", 2, enc("2"));
    const err = await new Promise<StreamfnError>((resolve) => {
      const feed = new OrderedFeed({
        nc: h.cluster.nc,
        jsm: h.cluster.jsm,
        stream: h.cluster.settings.names.events,
        subject: h.events.subject("echo", "holey"),
        positionOf,
        from: 1,
        gapTimeoutMs: 300,
        onRecord: () => assert.fail("nothing can be delivered"),
        onError: resolve,
      });
      feed.start();
    });
    assert.equal(err.code, "CLUSTER_ERROR");
    assert.match(err.message, /position 1 missing/);
  });

  it("outputs: fenced appends, replayed numbers dropped, a stale writer refused with STREAM_FENCED", async () => {
    const first = await h.outputs.fence("echo", "o1", { worker: "w1", epoch: 1 });
    assert.equal(first.delivered, 0);
    for (let n = 1; n <= 3; n++) assert.equal((await first.write(n, `out${n}`)).dropped, false);
    // A successor fences: it learns 3 outputs were delivered.
    const second = await h.outputs.fence("echo", "o1", { worker: "w2", epoch: 2 });
    assert.equal(second.delivered, 3);
    const stale = await first.write(4, "stale").catch((e: unknown) => e);
    assert.ok(stale instanceof FencedError, String(stale));
    assert.equal(stale.code, "STREAM_FENCED");
    assert.ok(first.fenced);
    // The successor replays from the start: 1-3 are dropped by number, 4 goes through.
    for (let n = 1; n <= 3; n++) assert.equal((await second.write(n, `out${n}`)).dropped, true);
    assert.equal((await second.write(4, "out4")).dropped, false);
    await second.end(JSON.stringify({ type: "end" }));
    const read = [];
    for await (const r of h.outputs.read("echo", "o1")) read.push(`${r.n}:${r.kind}:${dec(r.data)}`);
    assert.deepEqual(read, ["1:output:out1", "2:output:out2", "3:output:out3", "4:output:out4", `5:end:{"type":"end"}`]);
    const resumed = [];
    for await (const r of h.outputs.read("echo", "o1", 3)) resumed.push(r.n);
    assert.deepEqual(resumed, [4, 5]);
    const last = await h.outputs.last("echo", "o1");
    assert.equal(last?.kind, "end");
    // A late successor (after the end) learns the stream is complete.
    const third = await h.outputs.fence("echo", "o1", { worker: "w3", epoch: 3 });
    assert.ok(third.ended);
    assert.equal(third.delivered, 5);
  });

  it("a gateway follows outputs live from any number (resume)", async () => {
    const w = await h.outputs.fence("echo", "o2", { worker: "w1", epoch: 1 });
    await w.write(1, "a");
    await w.write(2, "b");
    const got: string[] = [];
    const feed = h.outputs.follow("echo", "o2", 2, (r) => got.push(`${r.position}:${r.kind}`), (err) => assert.fail(err));
    await eventually(() => got.length === 1, 5_000, "backfilled output");
    await w.write(3, "c");
    await w.end("{}");
    await eventually(() => got.length === 3, 5_000, "live outputs");
    feed.close();
    assert.deepEqual(got, ["2:output", "3:output", "4:end"]);
  });

  it("ownership: create first, then revision-checked takeover; two successors never share an epoch", async () => {
    const c1 = await h.owners.acquire("echo", "own.1", "w1");
    assert.deepEqual({ worker: c1?.worker, epoch: c1?.epoch }, { worker: "w1", epoch: 1 });
    const [a, b] = await Promise.all([h.owners.acquire("echo", "own.1", "w2"), h.owners.acquire("echo", "own.1", "w3")]);
    // Both may win, one after the other (the second read the first's claim, then took over
    // from it), or only one (both read w1's claim: the revision check refuses the later one).
    // What must hold: one epoch per claim, each taken over from the epoch just below it.
    const winners = [a, b].filter((c) => c !== null).sort((x, y) => x.epoch - y.epoch);
    assert.ok(winners.length >= 1, JSON.stringify([a, b]));
    winners.forEach((w, i) => {
      assert.equal(w.epoch, 2 + i, JSON.stringify(winners));
      assert.equal(w.previous?.epoch, w.epoch - 1, JSON.stringify(winners));
    });
    assert.deepEqual(winners[0]!.previous, { worker: "w1", epoch: 1 });
    assert.equal(await h.owners.holds("echo", "own.1", c1!), false);
    const last = winners.at(-1)!;
    for (const w of winners) assert.equal(await h.owners.holds("echo", "own.1", w), w === last);
    await h.owners.release("echo", "own.1");
    assert.equal(await h.owners.get("echo", "own.1"), null);
    const again = await h.owners.acquire("echo", "own.1", "w4");
    assert.equal(again?.epoch, 1);
  });

  it("survives a NATS server restart (file store): clients reconnect, data is still there, appends carry on", async () => {
    const logged: string[] = [];
    const logger = { info: (_: object, msg: string) => logged.push(msg), warn: (_: object, msg: string) => logged.push(msg) };
    const watched = await openCluster({ servers: nats.url, prefix: "t1", logger });
    await h.events.append("echo", "restart", 1, enc("before"));
    await nats.restart();
    await eventually(async () => {
      try {
        await h.events.append("echo", "restart", 2, enc("after"));
        return true;
      } catch {
        return false;
      }
    }, 20_000, "append after restart");
    const read = [];
    for await (const e of h.events.read("echo", "restart")) read.push(dec(e.data));
    assert.deepEqual(read, ["before", "after"]);
    await eventually(() => logged.includes("reconnected to NATS"), 20_000, `reconnect logged: ${logged.join(", ")}`);
    assert.ok(logged.includes("disconnected from NATS; reconnecting"));
    // The work queue and the bucket work again too.
    await watched.work.publishOpen("echo", "after-restart");
    assert.equal((await watched.owners.acquire("echo", "after-restart", "w"))?.epoch, 1);
    await watched.close();
  });
});
