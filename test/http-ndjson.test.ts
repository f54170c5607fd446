import { strict as assert } from "node:assert";
import { spawn, spawnSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { NdjsonStream, call } from "./helpers/http-client.js";
import { eventually, startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";

const echo = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  idleTimeoutMs: 5000,
  async *handler(events, ctx) {
    for await (const e of events) yield { e, seq: ctx.event.seq };
    yield { endReason: ctx.endReason };
  },
});`;

// Takes its time per event (a macrotask each), counts them.
const slow = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  inboxLimit: 4,
  async handler(events) {
    let n = 0;
    for await (const e of events) { n++; await new Promise((r) => setImmediate(r)); }
    return { n };
  },
});`;

const bytes = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  async *handler(events) {
    for await (const e of events) yield new Uint8Array([1, 2, 3, e]);
  },
});`;

const three = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  maxEvents: 3,
  async *handler(events) { for await (const e of events) yield e; },
});`;

const hasCurl = spawnSync("curl", ["--version"]).status === 0;

describe("HTTP: a whole stream as one NDJSON request", () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer(
      { "echo.ts": echo, "slow.ts": slow, "bytes.ts": bytes, "three.ts": three },
      { overrides: { echo: { maxEventBytes: 1000 } } },
    );
  });
  after(() => t.close());

  it("streams records back while the request body is still being sent", async () => {
    const s = new NdjsonStream(`${t.url}/v1/functions/echo/streams/n1`);
    await s.write({ data: "first" });
    // The body is not finished: this output can only arrive if the response streams.
    const first = await s.waitFor((r) => r.type === "output");
    assert.deepEqual(first, { type: "output", n: 1, data: { e: "first", seq: 1 } });
    assert.equal(s.status, 200);
    assert.equal(s.res!.headers["content-type"], "application/x-ndjson");
    assert.equal(s.res!.headers["streamfn-stream-id"], "n1");
    await s.write({ data: "second", seq: 10 }, { data: "third" });
    s.end();
    const end = await s.waitEnd();
    assert.deepEqual(s.records[0], { type: "open", function: "echo", streamId: "n1", version: s.records[0]!.version });
    assert.deepEqual(s.outputs(), [
      { e: "first", seq: 1 },
      { e: "second", seq: 10 },
      { e: "third", seq: 11 },
      { endReason: "end" },
    ]);
    assert.deepEqual(end, { type: "end", status: "completed", reason: "end", events: 3, outputs: 4 });
  });

  it("takes PUT like POST, names the stream when the URL does not, and ends it at the body's end", async () => {
    const s = new NdjsonStream(`${t.url}/v1/functions/echo/streams`, { method: "PUT" });
    await s.write({ data: 1 }, '{"end":true}');
    s.end();
    const end = await s.waitEnd();
    assert.equal(end.reason, "end");
    assert.match(String(s.records[0]!.streamId), /^[0-9a-f-]{36}$/);
    assert.equal(s.res!.headers["streamfn-stream-id"], s.records[0]!.streamId);
  });

  it("answers a bad line with an error record naming the line, and goes on", async () => {
    const s = new NdjsonStream(`${t.url}/v1/functions/echo/streams/n-bad`);
    await s.write({ data: "a" }, "not json", { foo: 1 }, '{"data":2,"seq":0}', "", "   ", "\r", { data: "b" });
    s.end();
    const end = await s.waitEnd();
    const errors = s.records.filter((r) => r.type === "error");
    assert.deepEqual(
      errors.map((e) => [e.code, e.line]),
      [
        ["INVALID_JSON", 2],
        ["INVALID_ENVELOPE", 3],
        ["INVALID_SEQ", 4],
      ],
    );
    assert.equal(errors[2]!.seq, 0);
    assert.equal(end.status, "completed");
    assert.equal(end.events, 2);
    assert.deepEqual(s.outputs().slice(0, 2), [{ e: "a", seq: 1 }, { e: "b", seq: 2 }]);
  });

  it("names a line's refused seq as sent: 1.5 comes back as 1.5", async () => {
    const s = new NdjsonStream(`${t.url}/v1/functions/echo/streams/n-frac`);
    await s.write('{"data":1,"seq":1.5}', '{"data":,"seq":2.5}', { data: "b" });
    s.end();
    await s.waitEnd();
    const errors = s.records.filter((r) => r.type === "error");
    assert.deepEqual(errors.map((e) => [e.code, e.seq, e.line]), [["INVALID_SEQ", 1.5, 1], ["INVALID_JSON", 2.5, 2]]);
    assert.match(String(errors[0]!.message), /got 1\.5$/);
  });

  it("refuses a line over maxEventBytes with EVENT_TOO_LARGE, counting it without keeping it", async () => {
    const s = new NdjsonStream(`${t.url}/v1/functions/echo/streams/n-big`);
    await s.write({ data: "small" });
    // 300 000 bytes of one line, sent in pieces; the function's maxEventBytes is 1000.
    const piece = "x".repeat(10_000);
    s.req.write('{"data":"');
    for (let i = 0; i < 30; i++) s.req.write(piece);
    await s.write('"}', { data: "after" });
    s.end();
    const end = await s.waitEnd();
    const err = s.records.find((r) => r.type === "error")!;
    assert.equal(err.code, "EVENT_TOO_LARGE");
    assert.equal(err.line, 2);
    assert.match(String(err.message), /line of 300011 bytes exceeds maxEventBytes \(1000\)/);
    assert.equal(end.events, 2);
    assert.deepEqual(s.outputs().slice(0, 2), [{ e: "small", seq: 1 }, { e: "after", seq: 2 }]);
  });

  it("sends binary outputs inline as base64", async () => {
    const s = new NdjsonStream(`${t.url}/v1/functions/bytes/streams`);
    await s.write({ data: 4 });
    s.end();
    await s.waitEnd();
    const out = s.records.find((r) => r.type === "output")!;
    assert.deepEqual(out, { type: "output", n: 1, binary: true, base64: Buffer.from([1, 2, 3, 4]).toString("base64") });
  });

  it("ends the stream with reason disconnect when the client goes away mid-body", async () => {
    const s = new NdjsonStream(`${t.url}/v1/functions/echo/streams/n-gone`);
    await s.write({ data: 1 });
    await s.waitFor((r) => r.type === "output");
    s.destroy();
    const ended = (await eventually(() => t.server.router.ended("echo", "n-gone"), 10_000, "the stream's end"))!;
    assert.equal(ended.reason, "disconnect");
    assert.equal(ended.status, "completed");
  });

  it("slows the uploader to the handler's pace instead of overflowing the inbox", async () => {
    // inboxLimit 4: the router refuses events past 16 queued, so a body read faster than the
    // handler takes it would get INBOX_FULL errors. 3000 lines arrive in a few big chunks.
    const s = new NdjsonStream(`${t.url}/v1/functions/slow/streams/n-slow`);
    const lines = Array.from({ length: 3000 }, (_, i) => ({ data: i }));
    await s.write(...lines);
    s.end();
    const end = await s.waitEnd(30_000);
    assert.deepEqual(s.records.filter((r) => r.type === "error"), []);
    assert.equal(end.status, "completed");
    assert.equal(end.events, 3000);
    assert.deepEqual(s.outputs(), [{ n: 3000 }]);
  });

  it("ends the response when the stream ends first, and drops the rest of the body", async () => {
    const s = new NdjsonStream(`${t.url}/v1/functions/three/streams/n-three`);
    await s.write({ data: 1 }, { data: 2 }, { data: 3 });
    const end = await s.waitEnd();
    assert.equal(end.reason, "max-events");
    assert.equal(end.events, 3);
    await s.write({ data: 4 }, { data: 5 });
    s.end();
    assert.equal(s.error, undefined);
  });

  it("answers refusals known before the stream starts as plain HTTP errors", async () => {
    const nope = await call(`${t.url}/v1/functions/nope/streams`, {
      method: "POST",
      headers: { "content-type": "application/x-ndjson" },
      body: '{"data":1}\n',
    });
    assert.equal(nope.status, 404);
    assert.equal(nope.body.error!.code, "FUNCTION_NOT_FOUND");
    const form = await call(`${t.url}/v1/functions/echo/streams`, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: '{"data":1}\n',
    });
    assert.equal(form.status, 415);
    assert.equal(form.body.error!.code, "UNSUPPORTED_MEDIA_TYPE");
    const del = await call(`${t.url}/v1/functions/echo/streams`, { method: "DELETE" });
    assert.equal(del.status, 405);
    assert.equal(del.headers.get("allow"), "GET, POST, PUT");
    const done = await call(`${t.url}/v1/functions/echo/streams/n1`, {
      method: "POST",
      headers: { "content-type": "application/x-ndjson" },
      body: '{"data":1}\n',
    });
    assert.equal(done.status, 409);
    assert.equal(done.body.error!.code, "STREAM_ENDED");
  });

  it("works with curl -N -T file (curl sends PUT)", { skip: !hasCurl && "no curl binary" }, async () => {
    const file = join(t.dir, "events.ndjson");
    await writeFile(file, '{"data":{"hello":1}}\n{"data":{"hello":2}}\n');
    const out = await runCurl([
      "-sS",
      "-N",
      "-T",
      file,
      "-H",
      "content-type: application/x-ndjson",
      `${t.url}/v1/functions/echo/streams`,
    ]);
    const records = out.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(records[0]!.type, "open");
    assert.deepEqual(
      records.filter((r) => r.type === "output").map((r) => r.data),
      [{ e: { hello: 1 }, seq: 1 }, { e: { hello: 2 }, seq: 2 }, { endReason: "end" }],
    );
    assert.deepEqual(records.at(-1), { type: "end", status: "completed", reason: "end", events: 2, outputs: 3 });
  });

  it("streams both ways with curl -N -T . (stdin read as it comes)", { skip: !hasCurl && "no curl binary" }, async () => {
    const curl = spawn("curl", [
      "-sS",
      "-N",
      "-T",
      ".",
      "-H",
      "content-type: application/x-ndjson",
      `${t.url}/v1/functions/echo/streams/n-curl`,
    ]);
    let out = "";
    curl.stdout.setEncoding("utf8").on("data", (s: string) => (out += s));
    const exited = new Promise<number | null>((resolve) => curl.on("close", resolve));
    curl.stdin.write('{"data":"one"}\n');
    // curl's stdin stays open: the output must come back before the upload is over.
    await eventually(() => out.includes('"n":1'), 10_000, "curl to print the first output");
    assert.ok(!out.includes('"type":"end"'));
    curl.stdin.end('{"data":"two"}\n');
    assert.equal(await exited, 0);
    const records = out.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(records.at(-1), { type: "end", status: "completed", reason: "end", events: 2, outputs: 3 });
  });
});

function runCurl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const curl = spawn("curl", args);
    let out = "";
    let err = "";
    curl.stdout.setEncoding("utf8").on("data", (s: string) => (out += s));
    curl.stderr.setEncoding("utf8").on("data", (s: string) => (err += s));
    curl.on("close", (code) => (code === 0 ? resolve(out) : reject(new Error(`curl exited ${code}: ${err}`))));
  });
}
