import { strict as assert } from "node:assert";
import { after, before, describe, it } from "node:test";
import type { OutputSink } from "../src/router/stream-table.js";
import { eventually, startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";

// Outputs are serialized in the instance; output credits travel lazily with other traffic.

const outputs = `
import { defineStreamFunction } from "streamfn";
class Point { constructor(x, y) { this.x = x; this.y = y; } toJSON() { return [this.x, this.y]; } }
export default defineStreamFunction({
  async *handler(events) {
    for await (const e of events) {
      if (e === "date") yield new Date(Date.UTC(2020, 0, 2, 3, 4, 5));
      else if (e === "point") yield new Point(1, 2);
      else if (e === "nested") yield { a: [1, { b: null }], s: "é\\u2028" };
      else if (e === "null") yield null;
      else if (e === "skip") yield undefined;
      else if (e === "bytes") yield new Uint8Array([1, 2, 3]);
      else if (e === "bigint") yield { n: 1n };
      else if (e === "promise") yield { later: Promise.resolve(1) };
      else if (e === "symbol") yield [1, Symbol("s")];
      else yield e;
    }
  },
});`;

const finallyProbe = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  async *handler(events) {
    try {
      for await (const e of events) {
        if (e === "count") yield { cleaned: (globalThis as { cleaned?: number }).cleaned ?? 0 };
        else yield e === "bad" ? 10n : e;
      }
    } finally {
      (globalThis as { cleaned?: number }).cleaned = ((globalThis as { cleaned?: number }).cleaned ?? 0) + 1;
    }
  },
});`;

const burst = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  async *handler(events) {
    for await (const n of events) for (let i = 1; i <= (n as number); i++) yield i;
  },
});`;

describe("the hot path", () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ "outputs.ts": outputs, "probe.ts": finallyProbe, "burst.ts": burst });
  });
  after(() => t.close());

  it("serializes outputs as JSON in the instance: toJSON, dates, nesting, null; undefined is no output; bytes stay binary", async () => {
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/outputs/streams`);
    for (const e of ["date", "point", "nested", "null", "skip", "bytes", 7]) c.event(e);
    c.end();
    const end = await c.waitEnd();
    assert.equal(end.status, "completed");
    assert.equal(end.outputs, 6);
    assert.deepEqual(c.outputs(), ["2020-01-02T03:04:05.000Z", [1, 2], { a: [1, { b: null }], s: "é\u2028" }, null, 7]);
    const binary = c.records.findIndex((r) => r.type === "output" && r.binary === true);
    assert.equal(c.records[binary]!.n, 5);
    assert.deepEqual([...(c.records[binary + 1]!.bytes as Uint8Array)], [1, 2, 3]);
  });

  it("hands the handler each JSON event's data exactly as sent, with its seq", async () => {
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/outputs/streams`);
    const sent = [
      { a: [1, 2.5, -0.125, 1e21, null, true], s: "\u00e9\ud83d\ude00\n\"q\"" },
      [[[]], {}],
      "plain",
      0,
    ];
    c.send(`{"seq":5,"data":${JSON.stringify(sent[0])}}`);
    c.send(`{"data":${JSON.stringify(sent[1])},"seq":6}`);
    c.send(`  {"data":"plain"}  `);
    c.event(0);
    c.send('{"data":{"__proto__":{"polluted":1},"x":1}}');
    c.end();
    await c.waitEnd();
    const outs = c.outputs();
    assert.deepEqual(outs.slice(0, 4), sent.slice(0, 4));
    assert.equal(JSON.stringify(outs[4]), '{"__proto__":{"polluted":1},"x":1}');
    assert.equal(({} as { polluted?: number }).polluted, undefined);
  });

  it("fails a stream whose output JSON cannot express with OUTPUT_NOT_SERIALIZABLE, naming the output; others go on", async () => {
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/outputs/streams`);
    c.event(1);
    c.event("bigint");
    const end = await c.waitEnd();
    assert.equal(end.status, "failed");
    assert.equal(end.reason, "error");
    const error = end.error as { code: string; message: string };
    assert.equal(error.code, "OUTPUT_NOT_SERIALIZABLE");
    assert.match(error.message, /output 2 is not JSON-serializable/);
    assert.match(error.message, /BigInt/);
    assert.deepEqual(c.outputs(), [1]);

    const next = await StreamClient.connect(`${t.wsUrl}/v1/functions/outputs/streams`);
    next.event("after");
    next.end();
    assert.equal((await next.waitEnd()).status, "completed");
    assert.deepEqual(next.outputs(), ["after"]);
  });

  it("refuses outputs JSON would silently change: a promise (missing await) or a symbol inside", async () => {
    for (const [what, pattern] of [
      ["promise", /output 1 is not JSON-serializable: "later" is a promise \(missing await\?\)/],
      ["symbol", /output 1 is not JSON-serializable: "1" is a symbol/],
    ] as const) {
      const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/outputs/streams`);
      c.event(what);
      const end = await c.waitEnd();
      const error = end.error as { code: string; message: string };
      assert.equal(error.code, "OUTPUT_NOT_SERIALIZABLE", what);
      assert.match(error.message, pattern);
    }
  });

  it("leaves the handler's loop through its finally when an output cannot be serialized", async () => {
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/probe/streams`);
    c.event("ok");
    c.event("bad");
    const end = await c.waitEnd();
    assert.equal((end.error as { code: string }).code, "OUTPUT_NOT_SERIALIZABLE");
    // The instance is healthy and the same thread ran the finally: a later stream sees the count.
    const d = await StreamClient.connect(`${t.wsUrl}/v1/functions/probe/streams`);
    d.event("count");
    d.end();
    assert.equal((await d.waitEnd()).status, "completed");
    assert.deepEqual(d.outputs(), [{ cleaned: 1 }]);
  });

  it("keeps a handler going that yields far more outputs than its window from one event, with no other traffic", async () => {
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/burst/streams`);
    c.event(1000);
    await c.waitFor((r) => r.type === "output" && r.n === 1000, 10_000);
    c.end();
    const end = await c.waitEnd();
    assert.equal(end.status, "completed");
    assert.equal(end.outputs, 1000);
    assert.deepEqual(c.outputs().slice(-3), [998, 999, 1000]);
  });

  it("answers one event at a time, many times over (the next event sent only after the previous output)", async () => {
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/burst/streams`);
    for (let i = 1; i <= 300; i++) {
      c.event(1);
      await c.waitFor((r) => r.type === "output" && r.n === i);
    }
    c.end();
    const end = await c.waitEnd();
    assert.equal(end.outputs, 300);
  });

  it("flushes a closing stream's sinks after its last output and before its end record", async () => {
    // A sink that holds writes back for the turn (the WebSocket one) must let the handler's
    // last outputs go before the bookkeeping of the stream's end, not after it.
    const calls: string[] = [];
    const sink: OutputSink = {
      output: (n) => void calls.push(`out ${n}`),
      flush: () => void calls.push("flush"),
      end: (record) => void calls.push(`end ${record.status}`),
    };
    const table = t.server.table;
    const s = await table.open("burst", "flush-order", sink);
    table.pushBatch(s, [{ data: 3, seq: undefined, binary: false, bytes: 1 }], true);
    await eventually(() => calls.some((c) => c.startsWith("end")), 5_000, "the stream to end");
    assert.deepEqual(calls, ["out 1", "out 2", "out 3", "flush", "end completed"]);
  });
});
