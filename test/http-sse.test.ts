import { strict as assert } from "node:assert";
import { after, before, describe, it } from "node:test";
import { SseClient, call, postEvents } from "./helpers/http-client.js";
import { eventually, sleep, startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";

const echo = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  idleTimeoutMs: 10000,
  async *handler(events) {
    for await (const e of events) yield e;
  },
});`;

// 64 KiB per output: a subscriber that stops reading fills its socket quickly.
const big = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  idleTimeoutMs: 10000,
  async *handler(events) {
    const pad = "x".repeat(65536);
    for await (const e of events) yield { e, pad };
  },
});`;

describe("HTTP: outputs as server-sent events", () => {
  let t: TestServer;
  const base = (fn: string, id: string): string => `${t.url}/v1/functions/${fn}/streams/${id}`;
  before(async () => {
    t = await startTestServer({ "echo.ts": echo, "big.ts": big }, { outputRetention: 4 });
  });
  after(() => t.close());

  it("follows a stream live while another connection posts its events", async () => {
    assert.equal((await postEvents(t.url, "echo", "s1", [{ data: 1, seq: 1 }])).status, 202);
    const sse = new SseClient(`${base("echo", "s1")}/outputs`);
    const res = await sse.waitResponse();
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers["content-type"], "text/event-stream");
    await sse.waitOutputs(1);
    for (let i = 2; i <= 6; i++) {
      // Each output must reach the subscriber before the next event is even posted.
      await postEvents(t.url, "echo", "s1", [{ data: i, seq: i }]);
      await sse.waitOutputs(i);
    }
    const status = await call(base("echo", "s1"));
    assert.equal(status.body.subscribers, 1);
    await call(`${base("echo", "s1")}/end`, { method: "POST" });
    const end = await sse.waitEnd();
    assert.deepEqual(end, { type: "end", status: "completed", reason: "end", events: 6, outputs: 6 });
    assert.deepEqual(sse.outputs().map((r) => r.data), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(
      sse.events.filter((e) => e.event === "output").map((e) => e.id),
      ["1", "2", "3", "4", "5", "6"],
    );
    assert.deepEqual(sse.outputs()[0], { type: "output", n: 1, data: 1 });
  });

  it("resumes after Last-Event-ID (or ?from=), then continues live", async () => {
    await postEvents(t.url, "echo", "s2", [1, 2, 3, 4, 5].map((i) => ({ data: i, seq: i })));
    await eventually(() => (t.server.router.get("echo", "s2")?.outputs ?? 0) >= 5, 10_000, "5 outputs");
    const a = new SseClient(`${base("echo", "s2")}/outputs`, { "last-event-id": "3" });
    const b = new SseClient(`${base("echo", "s2")}/outputs?from=4`);
    // The header wins over the query, as it does when an EventSource reconnects.
    const c = new SseClient(`${base("echo", "s2")}/outputs?from=1`, { "last-event-id": "5" });
    await a.waitOutputs(2);
    await b.waitOutputs(1);
    await c.waitResponse();
    await postEvents(t.url, "echo", "s2", [{ data: 6, seq: 6 }, { end: true }]);
    for (const s of [a, b, c]) await s.waitEnd();
    assert.deepEqual(a.outputs().map((r) => r.n), [4, 5, 6]);
    assert.deepEqual(b.outputs().map((r) => r.n), [5, 6]);
    assert.deepEqual(c.outputs().map((r) => r.n), [6]);
    assert.equal(a.events.some((e) => e.event === "error"), false);
  });

  it("replays an ended stream's retained outputs, then its end", async () => {
    await postEvents(t.url, "echo", "s3", [{ data: "a" }, { data: "b" }, { end: true }]);
    await eventually(() => t.server.router.ended("echo", "s3"), 10_000, "the stream to end");
    const all = new SseClient(`${base("echo", "s3")}/outputs`);
    assert.deepEqual(await all.waitEnd(), { type: "end", status: "completed", reason: "end", events: 2, outputs: 2 });
    assert.deepEqual(all.outputs().map((r) => r.data), ["a", "b"]);
    const caughtUp = new SseClient(`${base("echo", "s3")}/outputs`, { "last-event-id": "2" });
    await caughtUp.waitEnd();
    assert.deepEqual(caughtUp.outputs(), []);
  });

  it("says so with OUTPUTS_EXPIRED when asked for outputs no longer kept", async () => {
    // outputRetention is 4 on this server.
    await postEvents(t.url, "echo", "s4", [1, 2, 3, 4, 5, 6, 7].map((i) => ({ data: i })));
    await eventually(() => (t.server.router.get("echo", "s4")?.outputs ?? 0) >= 7, 10_000, "7 outputs");
    const sse = new SseClient(`${base("echo", "s4")}/outputs?from=1`);
    await sse.waitOutputs(4);
    const err = JSON.parse(sse.events[0]!.data) as { type: string; code: string; message: string };
    assert.equal(sse.events[0]!.event, "error");
    assert.equal(err.code, "OUTPUTS_EXPIRED");
    assert.match(err.message, /outputs 2-3 are no longer retained/);
    assert.deepEqual(sse.outputs().map((r) => r.n), [4, 5, 6, 7]);
    sse.close();
    // Ended too, with the record keeping what the stream kept.
    await postEvents(t.url, "echo", "s4", [{ end: true }]);
    await eventually(() => t.server.router.ended("echo", "s4"), 10_000, "the stream to end");
    const late = new SseClient(`${base("echo", "s4")}/outputs`);
    await late.waitEnd();
    assert.equal(JSON.parse(late.events[0]!.data).code, "OUTPUTS_EXPIRED");
    assert.deepEqual(late.outputs().map((r) => r.n), [4, 5, 6, 7]);
  });

  it("holds the handler while a subscriber does not read, and lets go when it reads or leaves", async () => {
    const total = 300; // ≈ 20 MB of outputs
    await postEvents(t.url, "big", "s5", [{ data: 0 }]);
    const slow = new SseClient(`${base("big", "s5")}/outputs`);
    const res = await slow.waitResponse();
    res.pause();
    for (let i = 1; i < total; i += 100) {
      await postEvents(t.url, "big", "s5", Array.from({ length: Math.min(100, total - i) }, (_, k) => ({ data: i + k })));
    }
    const stream = t.server.router.get("big", "s5")!;
    await eventually(() => stream.heldAcks > 0, 10_000, "the router to hold the handler's output credits");
    const heldAt = stream.outputs;
    await sleep(200);
    assert.ok(stream.outputs < total, `all ${total} outputs went out to a subscriber that reads nothing`);
    assert.ok(stream.outputs - heldAt <= 64, "the handler went on far past the output window");

    // A second subscriber that leaves while the first still holds things up must not leave a sink behind.
    const gone = new SseClient(`${base("big", "s5")}/outputs?from=${stream.outputs}`);
    await gone.waitResponse();
    assert.equal(stream.sinks.size, 2);
    gone.close();
    await eventually(() => stream.sinks.size === 1, 10_000, "the departed subscriber's sink to go");

    res.resume();
    await postEvents(t.url, "big", "s5", [{ end: true }]);
    const end = await slow.waitEnd(30_000);
    assert.equal(end.outputs, total);
    assert.deepEqual(slow.outputs().map((r) => r.data && (r.data as { e: number }).e), Array.from({ length: total }, (_, i) => i));
  });

  it("lets a stream go on when its only subscriber leaves", async () => {
    await postEvents(t.url, "big", "s6", [{ data: 0 }]);
    const sse = new SseClient(`${base("big", "s6")}/outputs`);
    const res = await sse.waitResponse();
    res.pause();
    await postEvents(t.url, "big", "s6", Array.from({ length: 200 }, (_, i) => ({ data: i + 1 })));
    const stream = t.server.router.get("big", "s6")!;
    await eventually(() => stream.heldAcks > 0, 10_000, "the handler to be held");
    sse.close();
    await eventually(() => stream.outputs === 201, 10_000, "the handler to run free again");
    // The hold may be released by the socket draining as it closes, just before the server
    // sees the close and removes the sink: the sink must go, but not necessarily first.
    await eventually(() => stream.sinks.size === 0, 10_000, "the departed subscriber's sink to be removed");
  });

  it("lets a subscriber connect before the stream opens, and follows it from its first output", async () => {
    const sse = new SseClient(`${base("echo", "early")}/outputs`);
    assert.equal((await sse.waitResponse()).statusCode, 200);
    await postEvents(t.url, "echo", "early", [{ data: "first" }, { data: "second" }]);
    const outs = await sse.waitOutputs(2);
    assert.deepEqual(outs.map((o) => o.n), [1, 2]);
    assert.deepEqual(outs.map((o) => o.data), ["first", "second"]);
    await call(`${base("echo", "early")}/end`, { method: "POST" });
    assert.equal((await sse.waitEnd()).status, "completed");
  });

  it("answers unknown functions and bad resume points with an error", async () => {
    const unknownFn = await call(`${t.url}/v1/functions/nope/streams/x/outputs`);
    assert.equal(unknownFn.status, 404);
    assert.equal(unknownFn.body.error!.code, "FUNCTION_NOT_FOUND");
    const status = await call(base("echo", "nobody"));
    assert.equal(status.status, 404);
    assert.equal(status.body.error!.code, "STREAM_NOT_FOUND");
    await postEvents(t.url, "echo", "s7", [{ data: 1 }]);
    const bad = await call(`${base("echo", "s7")}/outputs?from=-1`);
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error!.code, "INVALID_REQUEST");
  });
});
