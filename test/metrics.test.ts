import { strict as assert } from "node:assert";
import { after, before, describe, it } from "node:test";
import { parseMetrics, scrape } from "./helpers/metrics-text.js";
import type { Scrape } from "./helpers/metrics-text.js";
import { eventually, startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";

const echo = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  async *handler(events) {
    for await (const e of events) yield e;
  },
});`;

const fail = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  async *handler(events) {
    for await (const e of events) {
      if (e === "boom") throw new Error("boom on purpose");
      yield e;
    }
  },
});`;

// Echoes each event, then (after its input ends on the idle timeout) one summary: the summary
// answers no event, so the idle wait before it must not land in the per-event latency.
const summarize = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  idleTimeoutMs: 300,
  async *handler(events) {
    let n = 0;
    for await (const e of events) { n++; yield e; }
    yield { summary: n };
  },
});`;

// One slot in all: a second stream has to wait for the first.
const hold = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  concurrency: 1,
  maxInstances: 1,
  async *handler(events) {
    for await (const e of events) yield e;
  },
});`;

async function runStream(t: TestServer, fn: string, events: unknown[]): Promise<StreamClient> {
  const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/${fn}/streams`);
  for (const e of events) c.event(e);
  c.end();
  await c.waitEnd();
  return c;
}

/** Checks a histogram's exposition is whole: cumulative buckets ending in +Inf = _count. */
function histogramCount(m: Scrape, name: string, labels: Record<string, string>): number {
  assert.equal(m.type(name), "histogram");
  const buckets = m.series(`${name}_bucket`).filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.ok(buckets.length > 2, `${name} has buckets`);
  for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i]!.value >= buckets[i - 1]!.value, `${name} buckets are cumulative`);
  const inf = buckets.find((b) => b.labels.le === "+Inf");
  const count = m.value(`${name}_count`, labels);
  assert.equal(inf?.value, count, `${name}: +Inf bucket equals _count`);
  return count!;
}

describe("GET /metrics", () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ "echo.ts": echo, "fail.ts": fail, "hold.ts": hold, "summarize.ts": summarize });
  });
  after(() => t.close());

  it("answers in the Prometheus text format with process metrics", async () => {
    const m = await scrape(t.url);
    assert.match(m.contentType, /^text\/plain; version=0\.0\.4/);
    assert.ok((m.value("process_resident_memory_bytes") ?? 0) > 0);
    assert.equal(m.type("process_cpu_seconds_total"), "counter");
    assert.ok(m.series("nodejs_eventloop_lag_seconds").length > 0);
    // Deployed functions show up before their first stream.
    assert.equal(m.value("streamfn_streams_opened_total", { function: "echo" }), 0);
    assert.equal(m.value("streamfn_instances", { function: "echo", state: "ready" }), 0);
    assert.equal(m.value("streamfn_function_version_info", { function: "echo", version: t.server.registry.current("echo")!.version, role: "current" }), 1);
  });

  it("counts streams, events, outputs, cold starts and per-event latency per function", async () => {
    for (let s = 0; s < 3; s++) {
      const c = await runStream(t, "echo", [1, 2, 3, 4, 5]);
      assert.deepEqual(c.outputs(), [1, 2, 3, 4, 5]);
    }
    const m = await scrape(t.url);
    const fn = { function: "echo" };
    assert.equal(m.type("streamfn_events_in_total"), "counter");
    assert.equal(m.value("streamfn_streams_opened_total", fn), 3);
    assert.equal(m.value("streamfn_events_in_total", fn), 15);
    assert.equal(m.value("streamfn_outputs_out_total", fn), 15);
    assert.equal(m.value("streamfn_streams_closed_total", { ...fn, status: "completed", reason: "end" }), 3);
    // One instance served all three streams in turn: one cold start, then warm ones.
    assert.equal(m.value("streamfn_cold_starts_total", fn), 1);
    assert.equal(m.value("streamfn_streams_started_total", { ...fn, start: "cold" }), 1);
    assert.equal(m.value("streamfn_streams_started_total", { ...fn, start: "warm" }), 2);
    assert.equal(histogramCount(m, "streamfn_cold_start_duration_seconds", fn), 1);
    assert.ok(m.value("streamfn_cold_start_duration_seconds_sum", fn)! > 0);
    assert.equal(histogramCount(m, "streamfn_event_latency_seconds", fn), 15);
    assert.equal(histogramCount(m, "streamfn_stream_duration_seconds", fn), 3);
    assert.equal(histogramCount(m, "streamfn_stream_wait_seconds", fn), 3);
    assert.equal(m.value("streamfn_streams_live", fn), 0);
    assert.equal(m.value("streamfn_slots_in_use", fn), 0);
    assert.equal(m.value("streamfn_instances", { ...fn, state: "ready" }), 1);
    // Nothing leaked into another function's series.
    assert.equal(m.value("streamfn_events_in_total", { function: "fail" }), 0);
  });

  it("keeps idle time out of per-event latency: an output after the input ended answers no event", async () => {
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/summarize/streams`);
    for (const e of [1, 2, 3]) c.event(e);
    // No end from the producer: the input ends on the idle timeout, then the summary is yielded.
    await c.waitEnd();
    assert.deepEqual(c.outputs(), [1, 2, 3, { summary: 3 }]);
    assert.equal(c.records.find((r) => r.type === "end")!.reason, "idle");
    const m = await scrape(t.url);
    const fn = { function: "summarize" };
    assert.equal(m.value("streamfn_outputs_out_total", fn), 4);
    // Three outputs answered an event; the summary is counted as an output but not as a latency.
    assert.equal(histogramCount(m, "streamfn_event_latency_seconds", fn), 3);
  });

  it("counts a failed stream by its error code and reason", async () => {
    const c = await runStream(t, "fail", ["ok", "boom", "never"]);
    const end = c.records.find((r) => r.type === "end")!;
    assert.equal(end.status, "failed");
    assert.equal((end.error as { code: string }).code, "HANDLER_ERROR");
    const m = await scrape(t.url);
    const fn = { function: "fail" };
    assert.equal(m.value("streamfn_streams_failed_total", { ...fn, code: "HANDLER_ERROR" }), 1);
    assert.equal(m.value("streamfn_streams_closed_total", { ...fn, status: "failed", reason: "error" }), 1);
    assert.equal(m.value("streamfn_streams_closed_total", { ...fn, status: "completed", reason: "end" }), undefined);
    assert.equal(m.value("streamfn_outputs_out_total", fn), 1);
    assert.equal(m.value("streamfn_streams_failed_total", { function: "echo", code: "HANDLER_ERROR" }), undefined);
  });

  it("counts streams refused at open by code, but not names of functions that do not exist", async () => {
    const holder = await StreamClient.connect(`${t.wsUrl}/v1/functions/echo/streams/taken`);
    await assert.rejects(StreamClient.connect(`${t.wsUrl}/v1/functions/echo/streams/taken`), /409/);
    await assert.rejects(StreamClient.connect(`${t.wsUrl}/v1/functions/no-such-fn/streams`), /404/);
    const m = await scrape(t.url);
    assert.equal(m.value("streamfn_streams_refused_total", { function: "echo", code: "STREAM_BUSY" }), 1);
    assert.equal(m.value("streamfn_streams_refused_total", { function: "no-such-fn", code: "FUNCTION_NOT_FOUND" }), undefined);
    holder.end();
    await holder.waitEnd();
  });

  it("reads live, queued, instance and slot gauges, and live streams' events, at scrape time", async () => {
    const fn = { function: "hold" };
    const a = await StreamClient.connect(`${t.wsUrl}/v1/functions/hold/streams/a`);
    a.event("a1");
    a.event("a2");
    await a.waitFor((r) => r.type === "output" && r.data === "a2");
    const b = await StreamClient.connect(`${t.wsUrl}/v1/functions/hold/streams/b`);
    b.event("b1");

    const m = await scrape(t.url);
    assert.equal(m.type("streamfn_streams_live"), "gauge");
    assert.equal(m.value("streamfn_streams_live", fn), 2);
    assert.equal(m.value("streamfn_streams_queued", fn), 1);
    assert.equal(m.value("streamfn_slots_in_use", fn), 1);
    assert.equal(m.value("streamfn_slots_total", fn), 1);
    assert.equal(m.value("streamfn_instances", { ...fn, state: "ready" }), 1);
    // Counted while the streams are still open.
    assert.equal(m.value("streamfn_events_in_total", fn), 3);
    assert.equal(m.value("streamfn_outputs_out_total", fn), 2);

    a.end();
    await a.waitEnd();
    await b.waitFor((r) => r.type === "output" && r.data === "b1");
    b.end();
    await b.waitEnd();
    const done = (await eventually(async () => {
      const s = await scrape(t.url);
      return s.value("streamfn_streams_live", fn) === 0 ? s : undefined;
    }))!;
    assert.equal(done.value("streamfn_streams_queued", fn), 0);
    assert.equal(done.value("streamfn_slots_in_use", fn), 0);
    assert.equal(done.value("streamfn_events_in_total", fn), 3);
    assert.equal(done.value("streamfn_streams_closed_total", { ...fn, status: "completed", reason: "end" }), 2);
    // a waited for the instance to start; b waited for a's slot on the ready instance.
    assert.equal(done.value("streamfn_streams_started_total", { ...fn, start: "cold" }), 1);
    assert.equal(done.value("streamfn_streams_started_total", { ...fn, start: "warm" }), 1);
    assert.equal(histogramCount(done, "streamfn_stream_wait_seconds", fn), 2);
  });

  it("keeps each server's metrics in its own registry", async () => {
    const other = await startTestServer({ "echo.ts": echo });
    try {
      await runStream(other, "echo", ["x"]);
      const mine = await scrape(t.url);
      const theirs = await scrape(other.url);
      assert.equal(theirs.value("streamfn_events_in_total", { function: "echo" }), 1);
      assert.equal(mine.value("streamfn_events_in_total", { function: "echo" }), 15);
      assert.equal(theirs.value("streamfn_events_in_total", { function: "hold" }), undefined);
      assert.ok((theirs.value("process_resident_memory_bytes") ?? 0) > 0);
    } finally {
      await other.close();
    }
  });
});

describe("metrics text parser", () => {
  it("reads labels with escapes and special values", () => {
    const m = parseMetrics('# TYPE x counter\nx{a="q\\"uote",b="2"} 3\ny +Inf\n');
    assert.equal(m.value("x", { a: 'q"uote', b: "2" }), 3);
    assert.equal(m.value("y"), Infinity);
    assert.equal(m.value("x", { a: 'q"uote' }), undefined);
    assert.equal(m.type("x"), "counter");
  });
});
