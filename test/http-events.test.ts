import { strict as assert } from "node:assert";
import { request } from "node:http";
import { after, before, describe, it } from "node:test";
import { SseClient, call, postEvents } from "./helpers/http-client.js";
import type { JsonResponse } from "./helpers/http-client.js";
import { eventually, sleep, startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";

// One output per event: what it was, and its seq; a summary at the end.
const record = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  idleTimeoutMs: 5000,
  async *handler(events, ctx) {
    const seqs = [];
    for await (const e of events) {
      seqs.push(ctx.event.seq);
      yield e instanceof Uint8Array ? { bytes: [...e] } : { e };
    }
    yield { seqs };
  },
});`;

// Holds on to its first event for e.holdMs before taking more.
const hold = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  inboxLimit: 4,
  stallTimeoutMs: 60000,
  async handler(events) {
    let n = 0;
    for await (const e of events) {
      n++;
      if (e && e.holdMs) await new Promise((r) => setTimeout(r, e.holdMs));
    }
    return { n };
  },
});`;

describe("HTTP: per-event posts", () => {
  let t: TestServer;
  const fnUrl = (fn: string): string => `${t.url}/v1/functions/${fn}/streams`;
  before(async () => {
    t = await startTestServer({ "record.ts": record, "hold.ts": hold }, { overrides: { record: { maxEventBytes: 1000, inboxLimit: 16 } } });
  });
  after(() => t.close());

  it("takes one envelope, an NDJSON batch and a binary body; the first opens the stream", async () => {
    const one = await postEvents(t.url, "record", "e1", [{ data: "a", seq: 1 }]);
    assert.equal(one.status, 202);
    assert.deepEqual(one.body, { accepted: 1, duplicates: 0, lastSeq: 1 });
    const batch = await postEvents(t.url, "record", "e1", [{ data: "b", seq: 2 }, { data: "c" }]);
    assert.deepEqual(batch.body, { accepted: 2, duplicates: 0, lastSeq: 3 });
    const bin = await call(`${fnUrl("record")}/e1/events`, {
      method: "POST",
      headers: { "content-type": "application/octet-stream" },
      body: new Uint8Array([7, 8, 9]),
    });
    assert.equal(bin.status, 202);
    assert.deepEqual(bin.body, { accepted: 1, duplicates: 0, lastSeq: 4 });

    const status = await call(`${fnUrl("record")}/e1`);
    assert.equal(status.status, 200);
    assert.equal(status.body.state, "running");
    assert.equal(status.body.events, 4);
    assert.equal(status.body.function, "record");
    assert.equal(typeof status.body.instance, "number");

    const end = await call(`${fnUrl("record")}/e1/end`, { method: "POST" });
    assert.equal(end.status, 202);
    assert.equal(end.body.inputEnded, "end");
    const ended = (await eventually(async () => {
      const s = await call(`${fnUrl("record")}/e1`);
      return s.body.state === "ended" ? s.body : undefined;
    }, 10_000, "the stream to end"))!;
    assert.equal(ended.status, "completed");
    assert.equal(ended.reason, "end");
    assert.equal(ended.outputs, 5);
    // Ending again is harmless: it answers with the stream's status.
    const again = await call(`${fnUrl("record")}/e1/end`, { method: "POST" });
    assert.equal(again.status, 202);
    assert.equal(again.body.state, "ended");

    const sse = new SseClient(`${fnUrl("record")}/e1/outputs`);
    await sse.waitEnd();
    assert.deepEqual(
      sse.outputs().map((r) => r.data),
      [{ e: "a" }, { e: "b" }, { e: "c" }, { bytes: [7, 8, 9] }, { seqs: [1, 2, 3, 4] }],
    );
  });

  it("acknowledges retries (seq at or below the last) without delivering them twice", async () => {
    const first = await postEvents(t.url, "record", "e2", [{ data: 1, seq: 1 }, { data: 2, seq: 2 }, { data: 3, seq: 3 }]);
    assert.deepEqual(first.body, { accepted: 3, duplicates: 0, lastSeq: 3 });
    const retry = await postEvents(t.url, "record", "e2", [{ data: 1, seq: 1 }, { data: 2, seq: 2 }, { data: 3, seq: 3 }]);
    assert.deepEqual(retry.body, { accepted: 0, duplicates: 3, lastSeq: 3 });
    const overlap = await postEvents(t.url, "record", "e2", [{ data: 3, seq: 3 }, { data: 4, seq: 4 }, { data: 5, seq: 5 }]);
    assert.deepEqual(overlap.body, { accepted: 2, duplicates: 1, lastSeq: 5 });
    const binary = (seq: number): Promise<JsonResponse> =>
      call(`${fnUrl("record")}/e2/events`, {
        method: "POST",
        headers: { "content-type": "application/octet-stream", "streamfn-seq": String(seq) },
        body: new Uint8Array([seq]),
      });
    assert.deepEqual((await binary(6)).body, { accepted: 1, duplicates: 0, lastSeq: 6 });
    assert.deepEqual((await binary(6)).body, { accepted: 0, duplicates: 1, lastSeq: 6 });
    const end = await postEvents(t.url, "record", "e2", [{ end: true }]);
    assert.deepEqual(end.body, { accepted: 0, duplicates: 0, lastSeq: 6, ended: true });
    const sse = new SseClient(`${fnUrl("record")}/e2/outputs`);
    await sse.waitEnd();
    assert.deepEqual(sse.outputs().at(-1)!.data, { seqs: [1, 2, 3, 4, 5, 6] });
    const status = await call(`${fnUrl("record")}/e2`);
    assert.equal(status.body.duplicates, 5);
  });

  it("answers 429 with Retry-After when the inbox is full, takes nothing of that batch, and takes it later", async () => {
    // The handler holds its first event; the rest fill the instance's window, then the inbox (inboxLimit 4).
    assert.equal((await postEvents(t.url, "hold", "e3", [{ data: { holdMs: 1500 } }])).status, 202);
    let accepted = 1;
    let full: JsonResponse | undefined;
    for (let i = 0; i < 100 && !full; i++) {
      const r = await postEvents(t.url, "hold", "e3", [{ data: i }, { data: i }, { data: i }]);
      if (r.status === 429) full = r;
      else {
        assert.equal(r.status, 202, JSON.stringify(r.body));
        accepted += r.body.accepted as number;
      }
    }
    assert.ok(full, "the inbox never filled");
    assert.equal(full.body.error!.code, "INBOX_FULL");
    assert.equal(full.headers.get("retry-after"), "1");
    const status = await call(`${fnUrl("hold")}/e3`);
    assert.equal(status.body.events, accepted, "a refused batch must leave nothing behind");
    assert.ok((status.body.queued as number) <= 4);

    // Once the handler moves on, the same batch goes in.
    const retried = (await eventually(async () => {
      const r = await postEvents(t.url, "hold", "e3", [{ data: "x" }, { data: "y" }, { data: "z" }]);
      if (r.status === 429) {
        await sleep(50);
        return undefined;
      }
      return r;
    }, 20_000, "the batch to be taken"))!;
    assert.equal(retried.status, 202);
    assert.equal(retried.body.accepted, 3);
    await postEvents(t.url, "hold", "e3", [{ end: true }]);
    const sse = new SseClient(`${fnUrl("hold")}/e3/outputs`);
    await sse.waitEnd(20_000);
    assert.deepEqual(sse.outputs()[0]!.data, { n: accepted + 3 });
  });

  it("refuses bad requests with a status and a stable code, taking nothing", async () => {
    const post = (fn: string, id: string, type: string, body: string): Promise<JsonResponse> =>
      call(`${fnUrl(fn)}/${id}/events`, { method: "POST", headers: { "content-type": type }, body });
    const expect = async (r: Promise<JsonResponse>, status: number, code: string): Promise<JsonResponse> => {
      const res = await r;
      assert.equal(res.status, status, JSON.stringify(res.body));
      assert.equal(res.body.error!.code, code);
      return res;
    };
    await expect(post("record", "bad", "application/json", "{nope"), 400, "INVALID_JSON");
    await expect(post("record", "bad", "application/json", '{"value":1}'), 400, "INVALID_ENVELOPE");
    const line = await expect(post("record", "bad", "application/x-ndjson", '{"data":1}\n{"data":2,"seq":-1}\n'), 400, "INVALID_SEQ");
    assert.match(line.body.error!.message, /^line 2: /);
    const fraction = await expect(post("record", "bad", "application/json", '{"data":1,"seq":1.5}'), 400, "INVALID_SEQ");
    assert.match(fraction.body.error!.message, /got 1\.5$/, "the seq as sent, not cut to 1");
    const inBatch = await expect(post("record", "bad", "application/x-ndjson", '{"data":1,"seq":1.5}\n'), 400, "INVALID_SEQ");
    assert.match(inBatch.body.error!.message, /^line 1: .*got 1\.5;/);
    // Nothing of a refused batch was taken: the stream never opened.
    await expect(call(`${fnUrl("record")}/bad`), 404, "STREAM_NOT_FOUND");
    await expect(post("nope", "bad", "application/json", '{"data":1}'), 404, "FUNCTION_NOT_FOUND");
    await expect(post("record", "bad", "text/plain", '{"data":1}'), 415, "UNSUPPORTED_MEDIA_TYPE");
    await expect(post("record", "bad", "application/json", JSON.stringify({ data: "x".repeat(2000) })), 413, "EVENT_TOO_LARGE");
    const many = Array.from({ length: 17 }, (_, i) => JSON.stringify({ data: i })).join("\n");
    await expect(post("record", "bad", "application/x-ndjson", many), 413, "BATCH_TOO_LARGE");
    await expect(post("record", "bad", "application/x-ndjson", "\n\n"), 400, "INVALID_REQUEST");
    await expect(call(`${fnUrl("record")}/bad/events`), 405, "METHOD_NOT_ALLOWED");
    await expect(call(`${fnUrl("record")}/bad/end`, { method: "POST" }), 404, "STREAM_NOT_FOUND");
    await expect(call(`${fnUrl("record")}/bad/nothing`), 404, "NOT_FOUND");
    await expect(
      call(`${fnUrl("record")}/bad/events`, {
        method: "POST",
        headers: { "content-type": "application/octet-stream", "streamfn-seq": "zero" },
        body: "x",
      }),
      400,
      "INVALID_SEQ",
    );

    // An ended stream refuses late events.
    await postEvents(t.url, "record", "late", [{ data: 1 }, { end: true }]);
    await eventually(() => t.server.router.ended("record", "late"), 10_000, "the stream to end");
    await expect(post("record", "late", "application/json", '{"data":2}'), 409, "STREAM_ENDED");
  });

  it("refuses an over-long body without a Content-Length once it passes the limit", async () => {
    const res = await new Promise<{ status: number; body: string; connection: string | undefined }>((resolve, reject) => {
      const req = request(`${fnUrl("record")}/chunked/events`, {
        method: "POST",
        headers: { "content-type": "application/json" },
      });
      req.on("response", (r) => {
        let body = "";
        r.on("data", (c: Buffer) => (body += c.toString()));
        r.on("end", () => resolve({ status: r.statusCode!, body, connection: r.headers.connection }));
      });
      req.on("error", reject);
      req.write('{"data":"');
      // Chunked, and much more than maxEventBytes (1000): the answer comes without the rest being read.
      const timer = setInterval(() => req.write("x".repeat(500)), 5);
      req.on("close", () => clearInterval(timer));
    });
    assert.equal(res.status, 413);
    assert.equal(JSON.parse(res.body).error.code, "EVENT_TOO_LARGE");
    assert.equal(res.connection, "close");
  });
});
