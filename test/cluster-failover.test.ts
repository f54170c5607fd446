import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { kSkipWithoutNats } from "./helpers/nats-server.js";
import { TestCluster } from "./helpers/cluster-procs.js";
import { StreamClient } from "./helpers/ws-client.js";
import type { Rec } from "./helpers/ws-client.js";
import { SseClient } from "./helpers/http-client.js";

// Deterministic: outputs depend only on the events, so the run can be compared with the expected one.
const kRunningSum = `import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  idleTimeoutMs: 60_000,
  async *handler(events) {
    let sum = 0;
    for await (const e of events) {
      sum += e.x;
      yield { x: e.x, sum };
    }
    yield { total: sum };
  },
});
`;

// Outputs large enough that a producer that stops reading backs the gateway's socket up at once.
const kBigOutputs = `import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  idleTimeoutMs: 60_000,
  stallTimeoutMs: 500,
  async *handler(events) {
    let n = 0;
    for await (const e of events) yield { i: e, n: ++n, pad: "z".repeat(100000) };
    yield { done: n };
  },
});
`;

function expectedOutputs(xs: number[]): unknown[] {
  let sum = 0;
  const out: unknown[] = xs.map((x) => ({ x, sum: (sum += x) }));
  out.push({ total: sum });
  return out;
}

function outputsByN(records: Rec[]): Map<number, unknown> {
  const m = new Map<number, unknown>();
  for (const r of records) if (r.type === "output") m.set(r.n as number, r.data);
  return m;
}

describe("cluster failover: a producer resumes on another gateway", { skip: kSkipWithoutNats }, () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await TestCluster.start({ "sum.ts": kRunningSum, "big.ts": kBigOutputs }, "failover");
  });
  after(async () => {
    await cluster?.close();
  });

  it("gateway A is killed mid-stream; the producer reattaches on B with ?resume=1&after=n and resends its last 3 events: every output once, in order", async () => {
    await cluster.worker("fw1");
    const a = await cluster.gateway();
    const b = await cluster.gateway();
    const xs = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    const id = "fo-1";

    // A plain second connection is still refused while the stream is live.
    const onA = await StreamClient.connect(`${a.wsUrl}/v1/functions/sum/streams/${id}`);
    for (let i = 0; i < 5; i++) onA.event({ x: xs[i] }, i + 1);
    await onA.waitFor((r) => r.type === "output" && r.n === 5, 30_000);
    await assert.rejects(StreamClient.connect(`${b.wsUrl}/v1/functions/sum/streams/${id}`), (e: { status?: number; body?: { error?: { code?: string } } }) => e.status === 409 && e.body?.error?.code === "STREAM_BUSY");

    // A subscriber on B, which did not open the stream, resumes after output 2 from the output log.
    const sse = new SseClient(`${b.url}/v1/functions/sum/streams/${id}/outputs`, { "last-event-id": "2" });
    await sse.waitOutputs(3, 30_000);

    // Three more events the producer is unsure of, then A dies.
    for (let i = 5; i < 8; i++) onA.event({ x: xs[i] }, i + 1);
    a.proc.signal("SIGKILL");
    await onA.waitClose();
    const seenOnA = outputsByN(onA.records);
    const lastSeen = Math.max(...seenOnA.keys());

    const onB = await StreamClient.connect(`${b.wsUrl}/v1/functions/sum/streams/${id}?resume=1&after=${lastSeen}`);
    for (let i = 5; i < xs.length; i++) onB.event({ x: xs[i] }, i + 1);
    onB.end();
    const end = await onB.waitEnd(30_000);
    assert.equal(end.status, "completed", JSON.stringify(end));
    assert.equal(onB.errors().length, 0, JSON.stringify(onB.errors()));

    const ns = [...seenOnA.keys(), ...onB.records.filter((r) => r.type === "output").map((r) => r.n as number)];
    assert.deepEqual(ns, expectedOutputs(xs).map((_, i) => i + 1), "every output exactly once, in order, numbered as before");
    const seenOnB = outputsByN(onB.records);
    const sseEnd = await sse.waitEnd(30_000);
    assert.equal(sseEnd.status, "completed");
    assert.deepEqual(sse.events.filter((e) => e.event === "output").map((e) => Number(e.id)), [3, 4, 5, 6, 7, 8, 9, 10, 11], "SSE ids resume after Last-Event-ID, once each");
    assert.deepEqual(sse.outputs().map((r) => r.data), expectedOutputs(xs).slice(2));
    const all = ns.map((n) => seenOnA.get(n) ?? seenOnB.get(n));
    assert.deepEqual(all, expectedOutputs(xs));
  });

  it("a gateway that dies while its producer's reads are backed up does not hold the handler for ever; the producer resumes on B and gets every output once", async () => {
    await cluster.worker("fw-hold");
    const a = await cluster.gateway();
    const b = await cluster.gateway();
    const id = "fo-held";
    const onA = await StreamClient.connect(`${a.wsUrl}/v1/functions/big/streams/${id}`);
    onA.ws.pause();
    for (let i = 1; i <= 200; i++) onA.event(i, i);
    // The handler is held: A relays outputs into a backed-up socket and tells the worker so.
    let held: { state?: string; outputs?: number; heldOutputs?: number } = {};
    for (const t0 = Date.now(); Date.now() - t0 < 30_000; await new Promise((r) => setTimeout(r, 50))) {
      held = (await (await fetch(`${a.url}/v1/functions/big/streams/${id}`)).json()) as typeof held;
      if ((held.heldOutputs ?? 0) > 0) break;
    }
    assert.ok((held.heldOutputs ?? 0) > 0, `the gateway holds the stream: ${JSON.stringify(held)}`);
    await new Promise((r) => setTimeout(r, 800)); // past stallTimeoutMs: held is not stalled
    assert.ok((held.outputs ?? 0) < 200, `the handler was held back: ${JSON.stringify(held)}`);
    a.proc.signal("SIGKILL");
    onA.ws.terminate(); // a paused socket would not read the close

    // B reattaches from the start and resends every event (the ones A stored are dropped as duplicates).
    const onB = await StreamClient.connect(`${b.wsUrl}/v1/functions/big/streams/${id}?resume=1&after=0`);
    for (let i = 1; i <= 200; i++) onB.event(i, i);
    onB.end();
    const end = await onB.waitEnd(60_000);
    assert.equal(end.status, "completed", JSON.stringify(end));
    const outs = onB.records.filter((r) => r.type === "output");
    assert.deepEqual(outs.map((r) => r.n), Array.from({ length: 201 }, (_, i) => i + 1), "every output once, in order");
    assert.deepEqual((outs[200]!.data as { done: number }).done, 200);
  });

  it("a newer reattachment cuts the older connection off with STREAM_TAKEN_OVER; the stream goes on", async () => {
    const a = await cluster.gateway();
    const b = await cluster.gateway();
    const id = "fo-2";
    const first = await StreamClient.connect(`${a.wsUrl}/v1/functions/sum/streams/${id}`);
    first.event({ x: 1 }, 1);
    await first.waitFor((r) => r.type === "output" && r.n === 1, 30_000);
    await assert.rejects(StreamClient.connect(`${b.wsUrl}/v1/functions/sum/streams/${id}?after=-1`), (e: { status?: number; body?: { error?: { code?: string } } }) => e.status === 400 && e.body?.error?.code === "INVALID_REQUEST");
    const second = await StreamClient.connect(`${b.wsUrl}/v1/functions/sum/streams/${id}?resume=1&after=1`);
    const cut = await first.waitFor((r) => r.type === "error", 30_000);
    assert.equal(cut.code, "STREAM_TAKEN_OVER");
    await first.waitClose();
    second.event({ x: 1 }, 1); // a resend: dropped
    second.event({ x: 2 }, 2);
    second.end();
    const end = await second.waitEnd(30_000);
    assert.equal(end.status, "completed", JSON.stringify(end));
    assert.deepEqual(
      second.records.filter((r) => r.type === "output").map((r) => [r.n, r.data]),
      [
        [2, { x: 2, sum: 3 }],
        [3, { total: 3 }],
      ],
    );
  });
});

describe("cluster failover: the NATS server restarts mid-stream (file store)", { skip: kSkipWithoutNats }, () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await TestCluster.start({ "sum.ts": kRunningSum }, "restart", { file: true });
  });
  after(async () => {
    await cluster?.close();
  });

  it("gateway and worker reconnect and the stream completes with every output once", async () => {
    await cluster.worker("rw1");
    const gw = await cluster.gateway();
    const xs = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    const c = await StreamClient.connect(`${gw.wsUrl}/v1/functions/sum/streams/nr-1`);
    for (let i = 0; i < 5; i++) c.event({ x: xs[i] }, i + 1);
    await c.waitFor((r) => r.type === "output" && r.n === 5, 30_000);
    await cluster.nats.restart();
    for (let i = 5; i < xs.length; i++) c.event({ x: xs[i] }, i + 1);
    c.end();
    const end = await c.waitEnd(90_000);
    assert.equal(end.status, "completed", JSON.stringify(end));
    const outs = c.records.filter((r) => r.type === "output");
    assert.deepEqual(outs.map((r) => r.n), expectedOutputs(xs).map((_, i) => i + 1), "every output once, in order");
    assert.deepEqual(outs.map((r) => r.data), expectedOutputs(xs));
  });
});
