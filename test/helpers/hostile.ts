// What the hostile-input tests judge answers by: an oracle for envelopes written from the
// documented protocol (docs/http.md), a raw HTTP client that sends any bytes as a request,
// and the checks every error answer must pass.
import { strict as assert } from "node:assert";
import { connect } from "node:net";
import { ErrorCodes } from "../../src/api/errors.js";

/** What the server must make of one envelope's text. */
export type Expected =
  | { kind: "event"; data: unknown; seq: number | undefined }
  | { kind: "end" }
  /** Refused with one of these codes (which one can depend on the order of the fields). */
  | { kind: "error"; codes: string[] };

/**
 * The documented rules for one envelope: `{"data": <any JSON>, "seq"?: <positive integer>}`
 * or exactly `{"end": true}`. `text` is what the server decoded from the bytes it got.
 */
export function envelopeOracle(text: string): Expected {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { kind: "error", codes: ["INVALID_JSON"] };
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) return { kind: "error", codes: ["INVALID_ENVELOPE"] };
  const obj = v as Record<string, unknown>;
  const keys = Object.keys(obj);
  if (keys.includes("end")) {
    return keys.length === 1 && obj.end === true ? { kind: "end" } : { kind: "error", codes: ["INVALID_ENVELOPE"] };
  }
  if (!keys.includes("data")) return { kind: "error", codes: ["INVALID_ENVELOPE"] };
  const codes = new Set<string>();
  for (const k of keys) {
    if (k === "data") continue;
    if (k === "seq") {
      if (!isSeq(obj.seq)) codes.add("INVALID_SEQ");
    } else codes.add("INVALID_ENVELOPE");
  }
  if (codes.size > 0) return { kind: "error", codes: [...codes] };
  return { kind: "event", data: obj.data, seq: obj.seq as number | undefined };
}

export function isSeq(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 1;
}

/** The value a handler that yields its event sends back: the event's data through JSON once more. */
export function echoed(data: unknown): unknown {
  const text = JSON.stringify(data);
  return text === undefined ? null : (JSON.parse(text) as unknown);
}

/** The stream's dedup rule: a seq at or below the last one seen is a retry, dropped. */
export class SeqModel {
  last = 0;
  /** Whether an event with this seq (or none) is new; advances the last seq when it is. */
  take(seq: number | undefined): boolean {
    if (seq !== undefined && seq <= this.last) return false;
    this.last = seq ?? this.last + 1;
    return true;
  }
  /** Same judgement without taking anything. */
  peek(seq: number | undefined, last = this.last): { fresh: boolean; last: number } {
    if (seq !== undefined && seq <= last) return { fresh: false, last };
    return { fresh: true, last: seq ?? last + 1 };
  }
}

const kStackLine = /\n\s+at\s|\bat [^\s]+ \(.*:\d+:\d+\)|node:internal|\/dist\/src\//;

/** An error record or body: a code the platform documents, a message, and no stack trace. */
export function assertCleanError(error: unknown, what: string): { code: string; message: string } {
  assert.ok(typeof error === "object" && error !== null, `${what}: no error object in ${JSON.stringify(error)}`);
  const e = error as { code?: unknown; message?: unknown };
  assert.ok(typeof e.code === "string" && Object.hasOwn(ErrorCodes, e.code), `${what}: unknown code ${JSON.stringify(e.code)}`);
  assert.ok(typeof e.message === "string" && e.message.length > 0, `${what}: no message`);
  assert.doesNotMatch(e.message, kStackLine, `${what}: the message carries a stack trace`);
  assert.notEqual(e.code, "INTERNAL", `${what}: INTERNAL ${e.message}`);
  return e as { code: string; message: string };
}

/** No answer, record or body may show the server's internals. */
export function assertNoStack(text: string, what: string): void {
  assert.doesNotMatch(text, kStackLine, `${what}: the answer carries a stack trace: ${text.slice(0, 500)}`);
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** Whatever came back, as text, for messages. */
  text: string;
}

/**
 * Sends `request` (any bytes: a request line Node's client would refuse, invalid UTF-8, NUL)
 * over a fresh connection and reads one answer, then closes the connection. An upgrade (101)
 * or a streaming answer (server-sent events, NDJSON) is returned with its head only.
 */
export function rawRequest(port: number, request: Buffer | string, timeoutMs = 10_000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    let settled = false;
    const timer = setTimeout(() => finish(new Error(`no answer within ${timeoutMs} ms to ${JSON.stringify(String(request).slice(0, 200))}`)), timeoutMs);
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) return reject(err);
      const all = Buffer.concat(chunks);
      const headEnd = all.indexOf("\r\n\r\n");
      const head = all.subarray(0, headEnd === -1 ? all.length : headEnd).toString("latin1");
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      if (!m) return reject(new Error(`not an HTTP answer: ${JSON.stringify(all.toString("latin1").slice(0, 300))}`));
      const headers: Record<string, string> = {};
      for (const line of head.split("\r\n").slice(1)) {
        const c = line.indexOf(":");
        if (c > 0) headers[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim();
      }
      let body: Buffer = headEnd === -1 ? Buffer.alloc(0) : all.subarray(headEnd + 4);
      if (headers["transfer-encoding"] === "chunked") body = unchunk(body);
      resolve({ status: Number(m[1]), headers, body, text: all.toString("utf8") });
    };
    sock.on("data", (c: Buffer) => {
      chunks.push(c);
      const all = Buffer.concat(chunks);
      const headEnd = all.indexOf("\r\n\r\n");
      if (headEnd === -1) return;
      const head = all.toString("latin1", 0, headEnd);
      // An upgrade, or a response that streams until the stream ends (outputs, followed logs):
      // its head is the answer.
      if (/^HTTP\/1\.1 101 /.test(head) || /\r\ncontent-type: (text\/event-stream|application\/x-ndjson)/i.test(head)) finish();
      const length = /\r\ncontent-length: (\d+)/i.exec(head);
      if (length && all.length - headEnd - 4 >= Number(length[1])) finish();
    });
    sock.on("end", () => finish());
    sock.on("close", () => finish());
    sock.on("error", (err) => {
      // A server that answered and closed may reset a connection whose request it did not read.
      if (chunks.length > 0) finish();
      else finish(err);
    });
    sock.write(request);
  });
}

function unchunk(body: Buffer): Buffer {
  const out: Buffer[] = [];
  let pos = 0;
  for (;;) {
    const nl = body.indexOf("\r\n", pos);
    if (nl === -1) break;
    const size = parseInt(body.toString("latin1", pos, nl), 16);
    if (!(size > 0)) break;
    out.push(body.subarray(nl + 2, nl + 2 + size));
    pos = nl + 2 + size + 2;
  }
  return Buffer.concat(out);
}

/**
 * Percent-encodes every code unit of `s`, lone surrogates included (as the 3 bytes a WTF-8
 * encoder writes: invalid UTF-8 that the server has to cope with); `encodeURIComponent`
 * throws on those.
 */
export function percentEncodeAny(s: string): string {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const next = s.charCodeAt(i + 1);
    if (c >= 0xd800 && c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
      out += encodeURIComponent(s.slice(i, i + 2));
      i++;
    } else if (c >= 0xd800 && c <= 0xdfff) {
      out += `%${(0xe0 | (c >> 12)).toString(16).toUpperCase()}%${(0x80 | ((c >> 6) & 0x3f)).toString(16).toUpperCase()}%${(0x80 | (c & 0x3f)).toString(16).toUpperCase()}`;
    } else out += encodeURIComponent(s[i]!);
  }
  return out;
}
