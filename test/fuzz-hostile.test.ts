// Property-based fuzzing of everything a producer can send, against a real server on a free
// loopback port: envelopes over WebSocket, HTTP events and NDJSON; control messages out of
// order, twice, after the end; hostile paths and query strings. Every bad input must get an
// error record or an HTTP status with a documented code (no 500, no stack trace), the server
// must keep answering, and two healthy streams running alongside must see exactly their own
// outputs, in order.
//
// Runs are bounded and the seed fixed, so the file is deterministic and quick. To explore:
//   FUZZ_SEED=123 FUZZ_RUNS=500 node --test dist/test/fuzz-hostile.test.js
import { strict as assert } from "node:assert";
import { readdir } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { NdjsonStream, SseClient } from "./helpers/http-client.js";
import type { Rec } from "./helpers/ws-client.js";
import { StreamClient } from "./helpers/ws-client.js";
import { startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";
import { SeqModel, assertCleanError, assertNoStack, echoed, envelopeOracle, percentEncodeAny, rawRequest } from "./helpers/hostile.js";
import type { Expected, RawResponse } from "./helpers/hostile.js";

const kSeed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : 20_260_105;
const kRunsOverride = process.env.FUZZ_RUNS ? Number(process.env.FUZZ_RUNS) : undefined;
const kMaxEventBytes = 16_384;

const echo = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  idleTimeoutMs: 120000,
  maxDurationMs: 600000,
  maxEventBytes: ${kMaxEventBytes},
  async *handler(events) {
    for await (const e of events) yield e;
  },
});`;

/** Runs a property with the file's seed; a failure names the seed to replay it with. */
async function check<Ts extends [unknown, ...unknown[]]>(
  name: string,
  defaultRuns: number,
  arbs: { [K in keyof Ts]: fc.Arbitrary<Ts[K]> },
  predicate: (...args: Ts) => Promise<void>,
): Promise<void> {
  const numRuns = kRunsOverride ?? defaultRuns;
  try {
    await fc.assert(fc.asyncProperty(...arbs, predicate), { seed: kSeed, numRuns });
  } catch (err) {
    // fast-check's message holds the (shrunk) counterexample, which can be megabytes of nesting.
    const text = (err as Error).message;
    const c = (err as Error).cause;
    const cause = c instanceof Error ? (c.stack ?? c.message).split("\n").slice(0, 8).join("\n") : "";
    const message = `${name}: failed with FUZZ_SEED=${kSeed} (FUZZ_RUNS=${numRuns}); replay with ` +
      `FUZZ_SEED=${kSeed} node --test dist/test/fuzz-hostile.test.js\n${clip(text, 3000)}${cause ? `\ncause: ${clip(cause, 3000)}` : ""}`;
    console.error(message);
    throw new Error(message, { cause: err });
  }
}

// ---------------------------------------------------------------------------------------------
// Generators

const kHostileStrings = [
  "\u0000", "a\u0000b", "\u202eevil\u202c", "\u05e9\u05dc\u05d5\u05dd", "\u{1f600}\u{1f3f3}\u{fe0f}\u{200d}\u{1f308}",
  "\ud800", "\udfff", "x\ud83dy", "\ufeff", "\u2028\u2029", "\r\n", "..", "../../etc/passwd", "%00", "\\", "\"",
  "<script>", "a".repeat(300), "\u{10ffff}",
];

/** JSON text of a seq: mostly valid, then every other JSON type and the edges of numbers. */
const seqText = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 1, max: 60 }).map(String) },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      "0", "-1", "-0", "1.5", "1.0", "2e1", "1E2", "0.5e1", "9007199254740991", "9007199254740992",
      "9007199254740993", "1e400", "-1e400", "123456789012345678901234567890", "1e-400", "\"3\"", "null",
      "true", "false", "[1]", "{}", "{\"n\":1}", "\"\"", "0.0000001",
    ),
  },
  { weight: 1, arbitrary: fc.double({ noNaN: true }).map((d) => JSON.stringify(d)) },
  { weight: 1, arbitrary: fc.bigInt({ min: -(10n ** 25n), max: 10n ** 25n }).map(String) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)) },
);

/** JSON text of data: any JSON, hostile unicode, numbers past double range, deep nesting, too big. */
const dataText = fc.oneof(
  { weight: 6, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)) },
  { weight: 2, arbitrary: fc.constantFrom(...kHostileStrings).map((s) => JSON.stringify(s)) },
  // Raw (unescaped) unicode in the JSON text: lone surrogates become U+FFFD on the way out.
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 12 }).map((s) => `"${s.replace(/[\\"\u0000-\u001f]/g, "")}"`) },
  { weight: 1, arbitrary: fc.constantFrom("1e400", "-1e400", "123456789012345678901234567890", "-0", "1e-400", "9007199254740993") },
  // Nesting deep enough to matter, shallow enough for this process's deepStrictEqual (deeper: its own test).
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 1500 }).map((n) => "[".repeat(n) + "]".repeat(n)) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 1000 }).map((n) => '{"a":'.repeat(n) + "1" + "}".repeat(n)) },
  { weight: 1, arbitrary: fc.integer({ min: kMaxEventBytes - 16, max: kMaxEventBytes + 300 }).map((n) => JSON.stringify("x".repeat(n))) },
);

/** One envelope's text: valid events, every kind of broken one, end messages good and bad. */
const envelopeText = fc.oneof(
  { weight: 8, arbitrary: fc.tuple(dataText, fc.option(seqText, { nil: undefined })).map(([d, s]) => (s === undefined ? `{"data":${d}}` : `{"data":${d},"seq":${s}}`)) },
  { weight: 1, arbitrary: fc.tuple(dataText, seqText).map(([d, s]) => `{"seq":${s},"data":${d}}`) },
  {
    weight: 1,
    arbitrary: fc.tuple(dataText, fc.oneof(fc.constantFrom("end", "seq", "Data", "type", "__proto__", "constructor", ""), fc.string({ unit: "binary", maxLength: 8 })), fc.jsonValue({ maxDepth: 1 }))
      .map(([d, k, v]) => `{"data":${d},${JSON.stringify(k)}:${JSON.stringify(v)}}`),
  },
  { weight: 1, arbitrary: fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }).map((o) => JSON.stringify(o)) },
  {
    weight: 2,
    arbitrary: fc.constantFrom('{"end":true}', '{"end":false}', '{"end":1}', '{"end":"true"}', '{"end":true,"data":1}', '{"end":true,"seq":3}', '{"end":null}', ' {"end" : true} '),
  },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }).filter((v) => typeof v !== "object" || v === null || Array.isArray(v)).map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: fc.oneof(fc.string({ unit: "binary", maxLength: 40 }), fc.constantFrom("", " ", "{", "}", "{\"data\":", "nul", "{\"data\":1,}", "{'data':1}", "\u0000", "[]", "{\"data\":1}garbage")) },
);

type Frame = { kind: "text"; text: string } | { kind: "binary"; bytes: Uint8Array };

const frame: fc.Arbitrary<Frame> = fc.oneof(
  { weight: 9, arbitrary: envelopeText.map((text): Frame => ({ kind: "text", text })) },
  {
    weight: 1,
    arbitrary: fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.integer({ min: kMaxEventBytes - 4, max: kMaxEventBytes + 64 }).map((n) => new Uint8Array(n).fill(7)))
      .map((bytes): Frame => ({ kind: "binary", bytes })),
  },
);

/** A stream id no other test uses. */
let nextId = 0;
const freshId = (prefix: string): string => `${prefix}-${++nextId}`;

// ---------------------------------------------------------------------------------------------
// The model: what a stream must make of a sequence of envelopes.

type Outcome = { kind: "output"; value: unknown } | { kind: "binary"; bytes: Uint8Array } | { kind: "error"; codes: string[] } | { kind: "none" };

/** Judges one frame as the stream sees it; `ended` once an end was taken (codes for what follows). */
function judge(f: Frame, seqs: SeqModel, ended: boolean): { outcome: Outcome; end: boolean } {
  const bytes = f.kind === "text" ? Buffer.byteLength(f.text) : f.bytes.byteLength;
  if (ended) {
    // After the end: every event is refused (the stream may also be gone already).
    return { outcome: { kind: "error", codes: ["STREAM_INPUT_ENDED", "STREAM_ENDED", "EVENT_TOO_LARGE", "INVALID_JSON", "INVALID_ENVELOPE", "INVALID_SEQ"] }, end: false };
  }
  if (bytes > kMaxEventBytes) return { outcome: { kind: "error", codes: ["EVENT_TOO_LARGE"] }, end: false };
  if (f.kind === "binary") {
    seqs.take(undefined);
    return { outcome: { kind: "binary", bytes: f.bytes }, end: false };
  }
  // What the server decodes: the UTF-8 bytes the client sent (lone surrogates as U+FFFD).
  const e: Expected = envelopeOracle(Buffer.from(f.text).toString("utf8"));
  if (e.kind === "error") return { outcome: e, end: false };
  if (e.kind === "end") return { outcome: { kind: "none" }, end: true };
  if (!seqs.take(e.seq)) return { outcome: { kind: "none" }, end: false };
  return { outcome: { kind: "output", value: echoed(e.data) }, end: false };
}

/** The outputs a stream must have produced, in order, as records of any of the protocols. */
function outputValues(records: Rec[]): { values: unknown[]; binaries: Uint8Array[]; order: ("json" | "binary")[] } {
  const values: unknown[] = [];
  const binaries: Uint8Array[] = [];
  const order: ("json" | "binary")[] = [];
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    if (r.type !== "output") continue;
    if (!r.binary) {
      values.push(r.data);
      order.push("json");
    } else {
      order.push("binary");
      if (typeof r.base64 === "string") binaries.push(new Uint8Array(Buffer.from(r.base64, "base64")));
      else {
        const next = records[i + 1];
        assert.equal(next?.type, "binary-frame", "a binary output record is followed by its frame");
        binaries.push(next!.bytes as Uint8Array);
      }
    }
  }
  return { values, binaries, order };
}

function assertOutputs(got: Rec[], expected: Outcome[], what: string): void {
  const want = expected.filter((o) => o.kind === "output" || o.kind === "binary");
  const { values, binaries, order } = outputValues(got);
  assert.deepEqual(order, want.map((o) => (o.kind === "output" ? "json" : "binary")), `${what}: kinds and order of outputs`);
  // As JSON text: exact (key order included) and, unlike deepStrictEqual, fine with deep nesting.
  assert.equal(JSON.stringify(values), JSON.stringify(want.flatMap((o) => (o.kind === "output" ? [o.value] : []))), `${what}: JSON outputs`);
  assert.deepStrictEqual(
    binaries.map((b) => Buffer.from(b).toString("hex")),
    want.flatMap((o) => (o.kind === "binary" ? [Buffer.from(o.bytes).toString("hex")] : [])),
    `${what}: binary outputs`,
  );
  const ns = got.filter((r) => r.type === "output").map((r) => r.n);
  assert.deepEqual(ns, ns.map((_, i) => i + 1), `${what}: output numbers count from 1 without a gap`);
}

// ---------------------------------------------------------------------------------------------

describe("fuzz: hostile input never hurts the server or a healthy neighbour", { timeout: 120_000 }, () => {
  let t: TestServer;
  let port: number;
  let healthyWs: StreamClient;
  let healthyNd: NdjsonStream;
  let healthySent = 0;
  let dirBefore: string[];

  before(async () => {
    t = await startTestServer({ "echo.ts": echo });
    port = Number(new URL(t.url).port);
    dirBefore = (await readdir(t.dir, { recursive: true })).sort();
    healthyWs = await StreamClient.connect(`${t.wsUrl}/v1/functions/echo/streams/healthy-ws`);
    healthyNd = new NdjsonStream(`${t.url}/v1/functions/echo/streams/healthy-nd`);
    await healthyNd.waitResponse();
  });

  after(async () => {
    // Nothing any input did made the server log a failure of its own.
    const bad = t.logs.filter((l) => l.level === "error" || l.level === "fatal");
    assert.deepEqual(bad.map((l) => l.msg), [], "server error logs");
    healthyWs.ws.terminate();
    healthyNd.destroy();
    await t.close();
  });

  /** One event to each healthy stream, then a health probe: the server still answers. */
  async function tick(): Promise<void> {
    await nudge();
    const health = await rawRequest(port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert.equal(health.status, 200, `health probe: ${health.text}`);
  }

  /** One event to each healthy stream, left to run alongside whatever comes next. */
  async function nudge(): Promise<void> {
    healthySent++;
    healthyWs.event({ h: healthySent }, healthySent);
    await healthyNd.write({ data: { h: healthySent }, seq: healthySent });
  }

  /** Both healthy streams produced exactly their events, in order, and nothing else. */
  async function assertHealthy(): Promise<void> {
    const want = Array.from({ length: healthySent }, (_, i) => ({ h: i + 1 }));
    await healthyWs.waitFor(() => healthyWs.outputs().length >= healthySent, 15_000).catch(() => undefined);
    await healthyNd.waitFor(() => healthyNd.outputs().length >= healthySent, 15_000).catch(() => undefined);
    assert.deepEqual(healthyWs.outputs(), want, "the healthy WebSocket stream's outputs");
    assert.deepEqual(healthyNd.outputs(), want, "the healthy NDJSON stream's outputs");
    assert.deepEqual(healthyWs.records.filter((r) => r.type !== "open" && r.type !== "output"), [], "the healthy WebSocket stream got no other record");
    assert.deepEqual(healthyNd.records.filter((r) => r.type !== "open" && r.type !== "output"), [], "the healthy NDJSON stream got no other record");
    assert.equal(healthyWs.closeCode, undefined);
  }

  /** The ended stream as a late subscriber sees it: retained outputs, then the end record. */
  async function replay(id: string): Promise<{ outputs: Rec[]; end: Rec; events: { event: string; data: string }[] }> {
    const sub = new SseClient(`${t.url}/v1/functions/echo/streams/${id}/outputs?from=0`);
    try {
      const end = await sub.waitEnd(15_000);
      return { outputs: sub.outputs(), end, events: sub.events };
    } finally {
      sub.close();
    }
  }

  it("WebSocket: any sequence of text and binary frames, ended any way", async () => {
    const ending = fc.constantFrom("end-frame", "close-1000", "close-4000", "terminate");
    await check("websocket frames", 200, [fc.array(frame, { maxLength: 30 }), ending], async (frames, how) => {
      const id = freshId("ws");
      await nudge();
      const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/echo/streams/${id}`);
      const seqs = new SeqModel();
      let ended = false;
      const outcomes: Outcome[] = [];
      const errorsBeforeEnd: string[][] = [];
      let sentAfterEnd = 0;
      for (const f of frames) {
        if (f.kind === "text") c.send(f.text);
        else c.binary(f.bytes);
        if (ended) sentAfterEnd++;
        const j = judge(f, seqs, ended);
        if (!ended) {
          outcomes.push(j.outcome);
          if (j.outcome.kind === "error") errorsBeforeEnd.push(j.outcome.codes);
        }
        ended ||= j.end;
      }
      if (how === "end-frame") {
        if (ended) sentAfterEnd++;
        c.end();
      } else if (how === "close-1000") c.close(1000);
      else if (how === "close-4000") c.close(4000);
      else {
        // A pong comes back once the server has read every frame before its ping.
        const pong = new Promise((r) => c.ws.once("pong", r));
        c.ws.ping();
        await pong;
        c.ws.terminate();
      }
      await tick();
      const replayed = await replay(id);
      const accepted = outcomes.filter((o) => o.kind === "output" || o.kind === "binary").length;
      // The end was taken at the first end envelope, else when the connection closed.
      const reason = ended || how === "end-frame" || how === "close-1000" ? "end" : "disconnect";
      assert.deepEqual(replayed.end, { type: "end", status: "completed", reason, events: accepted, outputs: accepted }, `end record of ${id}`);
      assertOutputs(replayed.outputs, outcomes, `replayed outputs of ${id}`);
      if (how === "end-frame") {
        await c.waitClose();
        assert.equal(c.closeCode, 1000);
        assertOutputs(c.records, outcomes, `outputs on the producer's connection ${id}`);
        const errors = c.errors();
        for (const e of errors) assertCleanError(e, `error record on ${id}`);
        // Each refused envelope got one error record, in order; after the end, at most one each.
        assert.ok(errors.length >= errorsBeforeEnd.length && errors.length <= errorsBeforeEnd.length + sentAfterEnd, `error count ${errors.length} on ${id}`);
        errorsBeforeEnd.forEach((codes, i) => {
          assert.ok(codes.includes(errors[i]!.code as string), `error ${i + 1} on ${id}: ${JSON.stringify(errors[i])}, expected one of ${codes.join(", ")}`);
          // The seq an error names is known to be wrong for some non-integers (fixed elsewhere); only its type is checked here.
          if (errors[i]!.seq !== undefined) assert.equal(typeof errors[i]!.seq, "number");
        });
        for (const e of errors.slice(errorsBeforeEnd.length)) {
          assert.ok(["STREAM_INPUT_ENDED", "STREAM_ENDED", "EVENT_TOO_LARGE", "INVALID_JSON", "INVALID_ENVELOPE", "INVALID_SEQ"].includes(e.code as string), JSON.stringify(e));
        }
        assert.equal(c.records.at(-1)!.type, "end", "the end record comes last");
      } else {
        for (const e of c.errors()) assertCleanError(e, `error record on ${id}`);
      }
      c.ws.terminate();
    });
    await assertHealthy();
  });

  it("WebSocket: text frames that are not UTF-8 close the connection (1007) and end the stream", async () => {
    const bad = fc.constantFrom(
      Buffer.from([0xff]), Buffer.from([0xc3]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xf8, 0x88, 0x80, 0x80, 0x80]),
      Buffer.from([0xc0, 0xaf]), Buffer.from('{"data":"\xff"}', "latin1"),
    );
    await check("invalid utf-8 text frames", 20, [fc.array(fc.integer({ min: 1, max: 50 }), { maxLength: 3 }), bad], async (before, bytes) => {
      const id = freshId("utf8");
      const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/echo/streams/${id}`);
      for (const v of before) c.event(v);
      c.ws.send(bytes, { binary: false });
      assert.equal(await c.waitClose(), 1007);
      await tick();
      const replayed = await replay(id);
      assert.equal(replayed.end.status, "completed");
      assert.equal(replayed.end.reason, "disconnect");
      assert.deepEqual(replayed.outputs.map((r) => r.data), before);
    });
    await assertHealthy();
  });

  it("HTTP events: any sequence of posts, batches, ends and cancels on one stream", async () => {
    type Post =
      | { kind: "json"; text: string }
      | { kind: "ndjson"; lines: string[]; crlf: boolean }
      | { kind: "octet"; bytes: Uint8Array; seq: string | undefined }
      | { kind: "type"; type: string; text: string }
      | { kind: "end" }
      | { kind: "cancel" };
    const post: fc.Arbitrary<Post> = fc.oneof(
      { weight: 6, arbitrary: envelopeText.map((text): Post => ({ kind: "json", text })) },
      { weight: 4, arbitrary: fc.record({ lines: fc.array(fc.oneof({ weight: 5, arbitrary: envelopeText }, { weight: 1, arbitrary: fc.constantFrom("", " ", "\t") }), { maxLength: 8 }), crlf: fc.boolean() }).map((p): Post => ({ kind: "ndjson", ...p })) },
      {
        weight: 1,
        arbitrary: fc.record({
          bytes: fc.uint8Array({ maxLength: 32 }),
          seq: fc.option(fc.oneof(fc.integer({ min: 1, max: 60 }).map(String), fc.constantFrom("0", "-1", "1.5", "x", "", " 7 ", "99999999999999999", "1e3")), { nil: undefined }),
        }).map((p): Post => ({ kind: "octet", ...p })),
      },
      { weight: 1, arbitrary: fc.tuple(fc.constantFrom("text/plain", "application/xml", "multipart/form-data", "application/json-seq", "\u00e9/x"), envelopeText).map(([type, text]): Post => ({ kind: "type", type, text })) },
      { weight: 1, arbitrary: fc.constant<Post>({ kind: "end" }) },
      { weight: 1, arbitrary: fc.constant<Post>({ kind: "cancel" }) },
    );
    await check("http events", 150, [fc.array(post, { minLength: 1, maxLength: 10 })], async (posts) => {
      const id = freshId("ev");
      await nudge();
      const base = `${t.url}/v1/functions/echo/streams/${id}`;
      const seqs = new SeqModel();
      type State = "none" | "live" | "input-ended" | "cancelled";
      // Changed inside judgeBatch too: typed wide so the checker does not narrow it to "none".
      let state = "none" as State;
      const outcomes: Outcome[] = [];
      for (const p of posts) {
        let res: RawResponse;
        let allowed: number[];
        let codes: string[] = [];
        const judgeBatch = (events: { seq: number | undefined; outcome: Outcome }[], end: boolean): void => {
          // A batch is all or nothing: judged against the stream's last seq without taking anything.
          let last = seqs.last;
          let fresh = 0;
          for (const e of events) {
            const r = seqs.peek(e.seq, last);
            last = r.last;
            if (r.fresh) fresh++;
          }
          if (state === "none" && events.length === 0 && end) {
            allowed = [404];
            codes = ["STREAM_NOT_FOUND"];
            return;
          }
          if (state === "input-ended" || state === "cancelled") {
            if (fresh === 0) {
              allowed = [202];
              return;
            }
            allowed = [409];
            codes = ["STREAM_INPUT_ENDED", "STREAM_ENDED"];
            return;
          }
          allowed = [202];
          for (const e of events) if (seqs.take(e.seq)) outcomes.push(e.outcome);
          state = end ? "input-ended" : "live";
        };
        if (p.kind === "json" || p.kind === "type") {
          const bytes = Buffer.from(p.text);
          const type = p.kind === "json" ? "application/json" : p.type;
          res = await rawRequest(port, request("POST", `${base}/events`, { "content-type": type }, bytes));
          if (p.kind === "type") {
            allowed = [415];
            codes = ["UNSUPPORTED_MEDIA_TYPE"];
          } else if (bytes.byteLength > kMaxEventBytes) {
            allowed = [413];
            codes = ["EVENT_TOO_LARGE"];
          } else {
            const e = envelopeOracle(bytes.toString("utf8"));
            if (e.kind === "error") {
              allowed = [400];
              codes = e.codes;
            } else if (e.kind === "end") judgeBatch([], true);
            else judgeBatch([{ seq: e.seq, outcome: { kind: "output", value: echoed(e.data) } }], false);
          }
        } else if (p.kind === "ndjson") {
          const body = Buffer.from(p.lines.join(p.crlf ? "\r\n" : "\n"));
          res = await rawRequest(port, request("POST", `${base}/events`, { "content-type": "application/x-ndjson" }, body));
          const events: { seq: number | undefined; outcome: Outcome }[] = [];
          let end = false;
          let problem: string[] | undefined;
          for (const line of body.toString("utf8").split("\n").map((l) => l.replace(/\r$/, ""))) {
            if (Buffer.byteLength(line) > kMaxEventBytes) {
              problem = ["EVENT_TOO_LARGE"];
              break;
            }
            if (line.trim() === "") continue;
            if (end) {
              problem = ["INVALID_ENVELOPE"];
              break;
            }
            const e = envelopeOracle(line);
            if (e.kind === "error") {
              problem = e.codes;
              break;
            }
            if (e.kind === "end") end = true;
            else events.push({ seq: e.seq, outcome: { kind: "output", value: echoed(e.data) } });
          }
          if (problem) {
            allowed = [problem[0] === "EVENT_TOO_LARGE" ? 413 : 400];
            codes = problem;
          } else if (events.length === 0 && !end) {
            allowed = [400];
            codes = ["INVALID_REQUEST"];
          } else judgeBatch(events, end);
        } else if (p.kind === "octet") {
          const headers: Record<string, string> = { "content-type": "application/octet-stream" };
          if (p.seq !== undefined) headers["streamfn-seq"] = p.seq;
          res = await rawRequest(port, request("POST", `${base}/events`, headers, Buffer.from(p.bytes)));
          const seq = p.seq === undefined ? undefined : /^\d{1,15}$/.test(p.seq.trim()) ? Number(p.seq) : NaN;
          if (seq !== undefined && !(Number.isSafeInteger(seq) && seq >= 1)) {
            allowed = [400];
            codes = ["INVALID_SEQ"];
          } else judgeBatch([{ seq, outcome: { kind: "binary", bytes: p.bytes } }], false);
        } else if (p.kind === "end") {
          res = await rawRequest(port, request("POST", `${base}/end`, {}, Buffer.alloc(0)));
          if (state === "none") {
            allowed = [404];
            codes = ["STREAM_NOT_FOUND"];
          } else {
            allowed = [202];
            if (state === "live") state = "input-ended";
          }
        } else {
          res = await rawRequest(port, request("DELETE", base, {}, Buffer.alloc(0)));
          if (state === "none") {
            allowed = [404];
            codes = ["STREAM_NOT_FOUND"];
          } else if (state === "live") {
            allowed = [200];
            state = "cancelled";
          } else {
            // The input ended: the stream may still be finishing, or done.
            allowed = [200, 409];
            codes = ["STREAM_ENDED"];
            if (res.status === 200) state = "cancelled";
          }
        }
        const what = `${p.kind} post to ${id}: ${JSON.stringify(p).slice(0, 300)} → ${res.status} ${res.body.toString().slice(0, 300)}`;
        assertNoStack(res.text, what);
        assert.ok(allowed!.includes(res.status), `${what}; expected ${allowed!.join(" or ")}`);
        const body = JSON.parse(res.body.toString("utf8")) as { error?: unknown };
        if (res.status >= 400) {
          const e = assertCleanError(body.error, what);
          assert.ok(codes.includes(e.code), `${what}; expected ${codes.join(" or ")}`);
        }
      }
      await tick();
      if (state === "none") {
        const status = await rawRequest(port, request("GET", base, {}, Buffer.alloc(0)));
        assert.equal(status.status, 404);
        return;
      }
      if (state === "live") {
        const end = await rawRequest(port, request("POST", `${base}/end`, {}, Buffer.alloc(0)));
        assert.equal(end.status, 202);
      }
      const replayed = await replay(id);
      if (state === "cancelled") {
        assert.equal(replayed.end.status, "failed");
        assert.equal((replayed.end.error as { code: string }).code, "STREAM_CANCELLED");
        // Cancelling may cut off outputs of events still in flight: a prefix of the expected ones.
        const want = outcomes.filter((o) => o.kind === "output" || o.kind === "binary");
        assertOutputs(replayed.outputs, want.slice(0, replayed.outputs.length), `outputs of cancelled ${id}`);
      } else {
        const accepted = outcomes.length;
        assert.deepEqual(replayed.end, { type: "end", status: "completed", reason: "end", events: accepted, outputs: accepted }, `end record of ${id}`);
        assertOutputs(replayed.outputs, outcomes, `outputs of ${id}`);
      }
    });
    await assertHealthy();
  });

  it("NDJSON: a whole stream of any lines, bytes that are not UTF-8 included", async () => {
    const line = fc.oneof(
      { weight: 8, arbitrary: envelopeText.map((s) => Buffer.from(s)) },
      { weight: 1, arbitrary: fc.constantFrom("", " ", "\r").map((s) => Buffer.from(s)) },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 24 }).map((b) => Buffer.from(b.filter((x) => x !== 10))) },
      { weight: 1, arbitrary: fc.constantFrom(Buffer.from('{"data":"\xff\xfe"}', "latin1"), Buffer.from([0x7b, 0x22, 0x64, 0x61, 0x74, 0x61, 0x22, 0x3a, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x7d])) },
    );
    await check("ndjson stream", 150, [fc.array(line, { maxLength: 25 }), fc.boolean(), fc.integer({ min: 1, max: 64 })], async (lines, crlf, chunk) => {
      const id = freshId("nd");
      await nudge();
      const s = new NdjsonStream(`${t.url}/v1/functions/echo/streams/${id}`);
      const body = Buffer.concat(lines.flatMap((l, i) => (i === 0 ? [l] : [Buffer.from(crlf ? "\r\n" : "\n"), l])));
      // In pieces of any size, so lines and UTF-8 sequences are split across chunks.
      for (let i = 0; i < body.length; i += chunk * 97) s.req.write(body.subarray(i, i + chunk * 97));
      s.end();
      const end = await s.waitEnd(15_000);
      const seqs = new SeqModel();
      let ended = false;
      const outcomes: Outcome[] = [];
      const errors: { line: number; codes: string[] }[] = [];
      const raws = body.length === 0 ? [] : splitLines(body);
      raws.forEach((raw, i) => {
        const text = raw.toString("utf8");
        if (ended) return;
        if (raw.byteLength > kMaxEventBytes) {
          errors.push({ line: i + 1, codes: ["EVENT_TOO_LARGE"] });
          return;
        }
        if (text.trim() === "") return;
        const j = judge({ kind: "text", text }, seqs, false);
        if (j.outcome.kind === "error") errors.push({ line: i + 1, codes: j.outcome.codes });
        else outcomes.push(j.outcome);
        ended = j.end;
      });
      const accepted = outcomes.filter((o) => o.kind === "output").length;
      assert.deepEqual(end, { type: "end", status: "completed", reason: "end", events: accepted, outputs: accepted }, `end of ${id}`);
      assertOutputs(s.records, outcomes, `outputs of ${id}`);
      const got = s.records.filter((r) => r.type === "error");
      for (const e of got) assertCleanError(e, `error record of ${id}`);
      // Lines after an end line may or may not get a record (the stream may be done already).
      const before = got.filter((e) => errors.some((x) => x.line === e.line));
      assert.equal(before.length, errors.length, `${id}: one error record per bad line before the end: ${JSON.stringify(got)} vs ${JSON.stringify(errors)}`);
      errors.forEach((x, i) => {
        assert.equal(before[i]!.line, x.line);
        assert.ok(x.codes.includes(before[i]!.code as string), `${id} line ${x.line}: ${JSON.stringify(before[i])}, expected ${x.codes.join(" or ")}`);
      });
      for (const e of got.filter((e) => !before.includes(e))) {
        assert.ok(["STREAM_INPUT_ENDED", "STREAM_ENDED", "EVENT_TOO_LARGE", "INVALID_JSON", "INVALID_ENVELOPE", "INVALID_SEQ"].includes(e.code as string), JSON.stringify(e));
      }
      assertNoStack(s.body, `body of ${id}`);
      await tick();
    });
    await assertHealthy();
  });

  it("paths and query strings: traversal, NUL, bad escapes, very long ids, unicode", async () => {
    const segment = fc.oneof(
      fc.constantFrom(
        "..", ".", "%2e%2e", "%2E%2E%2F", "..%2f..%2fetc", "%00", "a%00b", "%", "%zz", "%c3", "%ed%a0%80", "%ff", "%u0041",
        "echo%2f..", "\u0000", "..\\..\\", "~", "a:b", "CON", "%20", "+", "x".repeat(129), "y".repeat(5000), "healthy",
      ),
      fc.string({ unit: "binary", minLength: 1, maxLength: 12 }).map(percentEncodeAny),
      fc.constantFrom(...kHostileStrings).map(percentEncodeAny),
      fc.stringMatching(/^[A-Za-z0-9._:~-]{1,20}$/),
    );
    const query = fc.oneof(
      fc.constant(""),
      fc.tuple(
        fc.constantFrom("from", "after", "resume", "follow", "state", "limit", "cursor", "reason", "token", "source", "x"),
        fc.oneof(fc.constantFrom("", "-1", "0", "1", "1.5", "1e400", "999999999999999999999", "%00", "%ff", "true", "nope", "WzEsMl0", "bnVsbA", "W10", "e30", "%"), segment),
      ).map(([k, v]) => `?${k}=${v}`),
    );
    const shape = fc.constantFrom(
      "/v1/functions/:fn", "/v1/functions/:fn/streams", "/v1/functions/:fn/streams/:id", "/v1/functions/:fn/streams/:id/events",
      "/v1/functions/:fn/streams/:id/end", "/v1/functions/:fn/streams/:id/outputs", "/v1/functions/:fn/streams/:id/logs",
      "/v1/functions/:fn/logs", "/v1/functions/:fn/streams/:id/:fn", "/v1/:fn", "/:fn/../v1/status", "/v1/functions/:fn/streams/:id/x/y",
    );
    const method = fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "UPGRADE");
    await check("routes", 400, [method, shape, segment, segment, query], async (m, sh, fn, id, q) => {
      const path = sh.replaceAll(":fn", fn).replace(":id", id) + q;
      const decodedFn = safeDecode(fn);
      const decodedId = safeDecode(id);
      // Nothing may change what is served or cancel a healthy stream: only names the server refuses.
      if (m === "PUT" || m === "DELETE") fc.pre(!/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(decodedFn));
      if (m === "DELETE" && decodedFn === "echo") fc.pre(!decodedId.startsWith("healthy"));
      let res: RawResponse;
      if (m === "UPGRADE") {
        res = await rawRequest(
          port,
          Buffer.concat([
            Buffer.from("GET "), Buffer.from(path, "latin1"),
            Buffer.from(" HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"),
          ]),
        );
      } else {
        const body = m === "PUT" ? Buffer.from("export default 1;") : m === "POST" ? Buffer.from('{"data":1}\n') : Buffer.alloc(0);
        const headers: Record<string, string> = m === "PUT" ? { "content-type": "application/typescript" } : { "content-type": "application/x-ndjson" };
        res = await rawRequest(port, request(m, path, headers, body));
      }
      const what = `${m} ${path.slice(0, 200)} → ${res.text.slice(0, 300)}`;
      assertNoStack(res.text, what);
      assert.ok(res.status < 500 || res.status === 503, what);
      if (res.status === 101) {
        // A valid id for a served function: a stream opened; the socket is gone, so it ends.
        assert.equal(decodedFn, "echo", what);
        return;
      }
      if (m === "HEAD") {
        assert.equal(res.body.byteLength, 0, what);
      } else if (res.status >= 400 && (res.headers["content-type"] ?? "").startsWith("application/json")) {
        assertCleanError((JSON.parse(res.body.toString("utf8")) as { error?: unknown }).error, what);
      } else if (res.status >= 400) {
        // Only Node's own parser answers without our JSON: a request line it cannot read at all.
        assert.ok(res.status === 400 || res.status === 431 || res.status === 414, what);
      }
    });
    await tick();
    // No request wrote anything into (or next to) the functions directory.
    assert.deepEqual((await readdir(t.dir, { recursive: true })).sort().filter((f) => !f.startsWith(".streamfn")), dirBefore.filter((f) => !f.startsWith(".streamfn")));
    const fns = JSON.parse((await rawRequest(port, request("GET", "/v1/functions", {}, Buffer.alloc(0)))).body.toString()) as { functions: { name: string }[] };
    assert.deepEqual(fns.functions.map((f) => f.name), ["echo"]);
    await assertHealthy();
  });

  it("data nested thousands deep is taken or refused over every protocol, and never brings the server down", async () => {
    // Regression: an event posted to …/events or streamed as NDJSON crossed to its instance as
    // the parsed value; past a few thousand levels the structured clone overflowed the stack
    // inside a timer and the whole server process died.
    for (const depth of [1000, 5000, 8000]) {
      const data = `${"[".repeat(depth)}${"]".repeat(depth)}`;
      const text = `{"data":${data}}`;
      assert.ok(Buffer.byteLength(text) <= kMaxEventBytes);
      const ends: Rec[] = [];
      const posted = await rawRequest(port, request("POST", `/v1/functions/echo/streams/${freshId("deep-json")}/events`, { "content-type": "application/json" }, Buffer.from(text)));
      assert.equal(posted.status, 202, posted.text);
      const batchId = freshId("deep-batch");
      const batch = await rawRequest(port, request("POST", `/v1/functions/echo/streams/${batchId}/events`, { "content-type": "application/x-ndjson" }, Buffer.from(`${text}\n{"end":true}\n`)));
      assert.equal(batch.status, 202, batch.text);
      ends.push((await replay(batchId)).end);
      const nd = new NdjsonStream(`${t.url}/v1/functions/echo/streams/${freshId("deep-nd")}`);
      await nd.write(text);
      nd.end();
      ends.push(await nd.waitEnd());
      const ws = await StreamClient.connect(`${t.wsUrl}/v1/functions/echo/streams/${freshId("deep-ws")}`);
      ws.send(text);
      ws.end();
      ends.push(await ws.waitEnd());
      for (const end of ends) {
        // Echoed, or (too deep to serialize in the instance) failed with a clear code of its own.
        if (end.status === "completed") assert.equal(end.outputs, 1, JSON.stringify(end));
        else assert.equal((end.error as { code: string }).code, "OUTPUT_NOT_SERIALIZABLE", JSON.stringify(end));
      }
      await tick();
    }
    await assertHealthy();
  });

  it("empty binary frames and bodies are events of zero bytes, and leave WebSocket working in this process", async () => {
    // Regression: the gateway transferred the memory of ws's one shared empty Buffer to the
    // instance, detaching it for every WebSocket of the process (here: this test's clients).
    for (let i = 0; i < 3; i++) {
      const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/echo/streams/${freshId("empty-bin")}`);
      c.binary(new Uint8Array(0));
      c.event("after");
      c.end();
      await c.waitEnd();
      const frames = c.records.filter((r) => r.type === "binary-frame");
      assert.equal(frames.length, 1);
      assert.equal((frames[0]!.bytes as Uint8Array).byteLength, 0);
      assert.deepEqual(c.outputs(), ["after"]);
      const id = freshId("empty-octet");
      const posted = await rawRequest(port, request("POST", `/v1/functions/echo/streams/${id}/events`, { "content-type": "application/octet-stream" }, Buffer.alloc(0)));
      assert.equal(posted.status, 202, posted.text);
      await rawRequest(port, request("POST", `/v1/functions/echo/streams/${id}/end`, {}, Buffer.alloc(0)));
      const replayed = await replay(id);
      assert.deepEqual(replayed.outputs, [{ type: "output", n: 1, binary: true, base64: "" }]);
    }
    await tick();
    await assertHealthy();
  });

  it("WebSocket frames over the server's frame limit close the connection (1009); the stream ends", async () => {
    const id = freshId("huge");
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/echo/streams/${id}`);
    c.event("before");
    await c.waitFor((r) => r.type === "output");
    c.ws.send(Buffer.alloc(64 * 1024 * 1024 + 1, 0x61), { binary: true });
    assert.equal(await c.waitClose(), 1009);
    await tick();
    const replayed = await replay(id);
    assert.equal(replayed.end.reason, "disconnect");
    assert.deepEqual(replayed.outputs.map((r) => r.data), ["before"]);
    await assertHealthy();
  });
});

function request(method: string, path: string, headers: Record<string, string>, body: Buffer): Buffer {
  const url = path.startsWith("http") ? new URL(path) : undefined;
  const target = url ? url.pathname + url.search : path;
  const head = [`${method} ${target} HTTP/1.1`, "Host: 127.0.0.1", "Connection: close", `Content-Length: ${body.byteLength}`];
  for (const [k, v] of Object.entries(headers)) head.push(`${k}: ${v}`);
  return Buffer.concat([Buffer.from(`${head.join("\r\n")}\r\n\r\n`, "latin1"), body]);
}

/** The lines of an NDJSON body as the server splits them: at each newline byte, one trailing CR dropped. */
function splitLines(body: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let pos = 0;
  for (;;) {
    const nl = body.indexOf(10, pos);
    const end = nl === -1 ? body.length : nl;
    let line = body.subarray(pos, end);
    if (line.at(-1) === 13) line = line.subarray(0, -1);
    out.push(line);
    if (nl === -1) return out;
    pos = nl + 1;
  }
}

function clip(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n)}… (${s.length - n} more characters)` : s;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
