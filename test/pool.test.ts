// The instance pool over real sockets: slots, packing, cold starts, warm minimum, the bounded
// wait queue, refusal, keep-alive and scale to zero, and who decides a function's options.
import { strict as assert } from "node:assert";
import { after, before, describe, it } from "node:test";
import { fnSource, refused } from "./helpers/contract-util.js";
import { eventually, startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";

const echo = (options: string): string =>
  fnSource(`{
  ${options}
  async *handler(events, ctx) {
    for await (const e of events) yield e;
    yield { end: ctx.endReason };
  },
}`);

interface InstanceStatus {
  id: number;
  state: string;
  streams: number;
  slots: number;
  coldStartMs: number | null;
}

/** The figures these tests read, taken from the current version in GET /v1/status. */
interface VersionView {
  instances: number;
  slotsInUse: number;
  slotsTotal: number;
  queuedStreams: number;
  coldStarts: number;
  liveStreams: number;
  instanceList: InstanceStatus[];
}

interface VersionStatus {
  role: string;
  liveStreams: number;
  queuedStreams: number;
  coldStarts: number;
  slots: { inUse: number; total: number };
  instances: InstanceStatus[];
}

async function status(t: TestServer, fn: string): Promise<{ options: Record<string, unknown>; v: VersionView }> {
  const res = await fetch(`${t.url}/v1/status`);
  assert.equal(res.status, 200);
  const body = (await res.json()) as { functions: { name: string; options: Record<string, unknown>; versions: VersionStatus[] }[] };
  const f = body.functions.find((x) => x.name === fn);
  assert.ok(f, `status lists ${fn}`);
  const v = f.versions.find((x) => x.role === "current")!;
  return {
    options: f.options,
    v: {
      instances: v.instances.length,
      slotsInUse: v.slots.inUse,
      slotsTotal: v.slots.total,
      queuedStreams: v.queuedStreams,
      coldStarts: v.coldStarts,
      liveStreams: v.liveStreams,
      instanceList: v.instances,
    },
  };
}

async function echoed(c: StreamClient, value: unknown): Promise<void> {
  c.event(value);
  await c.waitFor((r) => r.type === "output" && JSON.stringify(r.data) === JSON.stringify(value));
}

const connect = (t: TestServer, fn: string, id: string): Promise<StreamClient> =>
  StreamClient.connect(`${t.wsUrl}/v1/functions/${fn}/streams/${id}`);

describe("instance pool", () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({
      "packed.ts": echo("concurrency: 2, keepAliveMs: 60000,"),
      "warm.ts": echo("concurrency: 1, minInstances: 1, maxInstances: 4, keepAliveMs: 150,"),
      "narrow.ts": echo("concurrency: 1, maxInstances: 1, maxQueuedStreams: 2,"),
      "zero.ts": echo("concurrency: 4, keepAliveMs: 150,"),
    });
  });
  after(() => t.close());

  it("packs streams into concurrency slots: with concurrency 2 the third stream starts a second instance", async () => {
    const before0 = await status(t, "packed");
    assert.equal(before0.v.instances, 0, "no instance before the first stream (minInstances 0)");
    assert.equal(before0.v.coldStarts, 0);

    const a = await connect(t, "packed", "p-a");
    await echoed(a, 1);
    const b = await connect(t, "packed", "p-b");
    await echoed(b, 1);
    let s = await status(t, "packed");
    assert.equal(s.v.instances, 1, "the second stream took the free slot of the first instance");
    assert.equal(s.v.slotsInUse, 2);
    assert.equal(s.v.slotsTotal, 2);
    assert.equal(s.v.coldStarts, 1);

    const c = await connect(t, "packed", "p-c");
    await echoed(c, 1);
    s = await status(t, "packed");
    assert.equal(s.v.instances, 2);
    assert.equal(s.v.slotsInUse, 3);
    assert.equal(s.v.slotsTotal, 4);
    assert.equal(s.v.coldStarts, 2, "each new instance is a counted cold start");
    assert.equal(s.v.liveStreams, 3);
    for (const i of s.v.instanceList) {
      assert.equal(i.state, "ready");
      assert.equal(typeof i.coldStartMs, "number", "cold starts are timed");
      assert.ok(i.coldStartMs! > 0);
    }
    assert.deepEqual(s.v.instanceList.map((i) => i.streams).sort(), [1, 2]);

    // Packing: a slot freed on the full instance is the next one taken (fullest first), so the
    // half-empty instance can drain.
    a.end();
    await a.waitEnd();
    const d = await connect(t, "packed", "p-d");
    await echoed(d, 1);
    const router = t.server.router;
    assert.equal(router.get("packed", "p-d")!.instance, router.get("packed", "p-b")!.instance);
    assert.equal((await status(t, "packed")).v.instances, 2);
    for (const x of [b, c, d]) x.end();
    await Promise.all([b, c, d].map((x) => x.waitEnd()));
  });

  it("picks the fullest instance with room, not the first or the emptiest", async () => {
    // Two instances, one with 1 stream, the other with 0: the new stream joins the one with 1.
    const pool = t.server.registry.current("packed")!;
    await eventually(() => pool.stats().slotsInUse === 0, 5_000, "previous streams to end");
    const s1 = await connect(t, "packed", "f-1");
    await echoed(s1, 1);
    const s2 = await connect(t, "packed", "f-2");
    await echoed(s2, 1);
    const router = t.server.router;
    assert.equal(router.get("packed", "f-1")!.instance, router.get("packed", "f-2")!.instance);
    for (const x of [s1, s2]) x.end();
    await Promise.all([s1, s2].map((x) => x.waitEnd()));
  });

  it("keeps minInstances warm at start and after keep-alive stops the surplus", async () => {
    let s = await status(t, "warm");
    assert.equal(s.v.instances, 1, "minInstances started before any stream");
    assert.equal(s.v.coldStarts, 1);
    assert.equal(s.v.instanceList[0]!.state, "ready");

    // Three streams on concurrency 1: the warm instance takes the first; two more start.
    const clients = await Promise.all([0, 1, 2].map((i) => connect(t, "warm", `w-${i}`)));
    await Promise.all(clients.map((c) => echoed(c, "x")));
    s = await status(t, "warm");
    assert.equal(s.v.instances, 3);
    assert.equal(s.v.coldStarts, 3, "the first stream was a warm start");
    for (const c of clients) c.end();
    await Promise.all(clients.map((c) => c.waitEnd()));

    // keepAliveMs (150) later the surplus is stopped, the minimum stays warm: not 0, and not
    // stopped and restarted (no new cold start).
    await eventually(async () => (await status(t, "warm")).v.instances === 1, 5_000, "scale down to minInstances");
    await new Promise((r) => setTimeout(r, 300));
    s = await status(t, "warm");
    assert.equal(s.v.instances, 1);
    assert.equal(s.v.coldStarts, 3, "the warm instance was kept, not replaced");
    assert.equal(s.v.instanceList[0]!.state, "ready");
  });

  it("queues a stream beyond maxInstances × concurrency and starts it when a slot frees; refuses beyond the queue with 503", async () => {
    const a = await connect(t, "narrow", "n-a");
    await echoed(a, "a1");
    // The queue holds two: b and c wait.
    const b = await connect(t, "narrow", "n-b");
    const c = await connect(t, "narrow", "n-c");
    b.event("b1");
    b.event("b2");
    c.event("c1");
    await eventually(() => t.server.router.get("narrow", "n-c")?.events === 1, 5_000, "c's event to be accepted");
    let s = await status(t, "narrow");
    assert.equal(s.v.instances, 1);
    assert.equal(s.v.queuedStreams, 2);
    assert.equal(t.server.router.get("narrow", "n-b")!.state, "waiting");
    assert.deepEqual(b.outputs(), [], "a waiting stream's handler has not started");

    // Beyond the queue: 503 with Retry-After, at the handshake.
    const r = await refused(`${t.wsUrl}/v1/functions/narrow/streams/n-d`);
    assert.equal(r.status, 503);
    assert.equal(r.body.error.code, "CAPACITY_EXCEEDED");
    assert.ok(Number(r.headers["retry-after"]) >= 1, `Retry-After: ${String(r.headers["retry-after"])}`);
    // A refused stream left no trace: its id is free to use later.
    assert.equal(t.server.router.ended("narrow", "n-d"), undefined);

    // a ends → b (first in line) gets the slot and its buffered events; c still waits.
    a.end();
    await a.waitEnd();
    await b.waitFor((x) => x.type === "output" && x.data === "b2");
    assert.equal(t.server.router.get("narrow", "n-c")!.state, "waiting");
    s = await status(t, "narrow");
    assert.equal(s.v.queuedStreams, 1);
    b.end();
    await b.waitEnd();
    await c.waitFor((x) => x.type === "output" && x.data === "c1");
    c.end();
    const end = await c.waitEnd();
    assert.equal(end.status, "completed");
    assert.deepEqual(c.outputs(), ["c1", { end: "end" }]);
    assert.equal((await status(t, "narrow")).v.coldStarts, 1, "all three ran on the one instance");

    // The refused id works now that there is room.
    const d = await connect(t, "narrow", "n-d");
    await echoed(d, "d1");
    d.end();
    await d.waitEnd();
  });

  it("a waiting stream whose producer disconnects still runs over the events it sent, once a slot frees", async () => {
    const a = await connect(t, "narrow", "q-a");
    await echoed(a, "a1");
    const b = await connect(t, "narrow", "q-b");
    const c = await connect(t, "narrow", "q-c");
    await eventually(async () => (await status(t, "narrow")).v.queuedStreams === 2, 5_000, "two waiting");
    b.event("b1");
    await eventually(() => t.server.router.get("narrow", "q-b")?.events === 1, 5_000, "b's event to be accepted");
    b.ws.terminate();
    c.ws.terminate();
    // Their input ended (disconnect) before they got a slot: they still run (over no events)
    // once there is room, rather than vanishing silently.
    a.end();
    await a.waitEnd();
    await eventually(() => t.server.router.ended("narrow", "q-c") !== undefined, 5_000, "c to finish");
    const endedB = t.server.router.ended("narrow", "q-b")!;
    assert.deepEqual([endedB.status, endedB.reason, endedB.events, endedB.outputs], ["completed", "disconnect", 1, 2]);
    assert.equal(t.server.router.ended("narrow", "q-c")!.status, "completed");
  });

  it("scales to zero keepAliveMs after the last stream, and cold-starts again for the next", async () => {
    const c = await connect(t, "zero", "z-1");
    await echoed(c, 1);
    assert.equal((await status(t, "zero")).v.instances, 1);
    c.end();
    await c.waitEnd();
    await eventually(async () => (await status(t, "zero")).v.instances === 0, 5_000, "scale to zero");
    const s = await status(t, "zero");
    assert.equal(s.v.slotsTotal, 0);
    assert.equal(s.v.coldStarts, 1);

    const again = await connect(t, "zero", "z-2");
    await echoed(again, 2);
    assert.equal((await status(t, "zero")).v.coldStarts, 2);
    again.end();
    assert.equal((await again.waitEnd()).status, "completed");
  });

  it("a stream that arrives during keep-alive reuses the idle instance (warm start)", async () => {
    const pool = t.server.registry.current("packed")!;
    await eventually(() => pool.stats().slotsInUse === 0, 5_000, "idle");
    const before0 = pool.stats().coldStarts;
    assert.ok(pool.stats().instances >= 1, "keepAliveMs is 60 s: the instances are still there");
    const c = await connect(t, "packed", "warm-start");
    await echoed(c, 1);
    assert.equal(pool.stats().coldStarts, before0);
    c.end();
    await c.waitEnd();
  });
});

describe("server configuration over function options", () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer(
      {
        "authored.ts": echo("idleTimeoutMs: 60000, concurrency: 3, maxEvents: 1000,"),
        "bare.ts": echo(""),
      },
      {
        // Under every function's own options.
        defaults: { concurrency: 5, maxEvents: 2 },
        // Over one function's own options.
        overrides: { authored: { idleTimeoutMs: 120 } },
      },
    );
  });
  after(() => t.close());

  it("resolves defaults < function options < per-function overrides", async () => {
    const authored = await status(t, "authored");
    assert.equal(authored.options.idleTimeoutMs, 120, "the override beats the function's own 60000");
    assert.equal(authored.options.concurrency, 3, "the function's own option beats the server default");
    assert.equal(authored.options.maxEvents, 1000);
    const bare = await status(t, "bare");
    assert.equal(bare.options.concurrency, 5, "the server default applies where the function says nothing");
    assert.equal(bare.options.maxEvents, 2);
    assert.equal(bare.options.idleTimeoutMs, 10_000, "the built-in default below everything");
  });

  it("enforces the resolved values on real streams", async () => {
    const a = await connect(t, "authored", "idle-override");
    a.event(1);
    const end = await a.waitEnd();
    assert.equal(end.reason, "idle", "ended after the overridden 120 ms, not the function's 60 s");

    const b = await connect(t, "bare", "default-limit");
    b.event(1);
    b.event(2);
    const endB = await b.waitEnd();
    assert.equal(endB.reason, "max-events");
    assert.equal(endB.events, 2);
  });

  it("refuses an invalid override when the server starts", async () => {
    await assert.rejects(
      startTestServer({ "bare.ts": echo("") }, { overrides: { bare: { concurrency: 0 } } }),
      (err: { code?: string; message: string }) => err.code === "INVALID_OPTIONS" && /concurrency/.test(err.message),
    );
    await assert.rejects(
      startTestServer({ "bare.ts": echo("") }, { defaults: { idleTimeoutMS: 5 } as never }),
      (err: { code?: string; message: string }) => err.code === "INVALID_OPTIONS" && /idleTimeoutMS/.test(err.message),
    );
  });
});
