// What each kind of stream in the soak does, and what the server must answer. A stream's
// result names every difference from what was expected; an empty list is an exact stream.
import { openStream } from "./clients.js";
import type { EndRecord, Protocol, StreamConn } from "./clients.js";

export const kKinds = ["healthy", "malformed", "slow-consumer", "disconnect", "throw", "stall", "spin", "hog"] as const;
export type Kind = (typeof kKinds)[number];

/** How often each kind is picked, and how many of it may run at once (the costly faults recycle instances). */
export const kMix: Record<Kind, { weight: number; maxInFlight: number }> = {
  healthy: { weight: 60, maxInFlight: Infinity },
  malformed: { weight: 8, maxInFlight: Infinity },
  "slow-consumer": { weight: 6, maxInFlight: 4 },
  disconnect: { weight: 8, maxInFlight: Infinity },
  throw: { weight: 8, maxInFlight: Infinity },
  stall: { weight: 4, maxInFlight: 2 },
  spin: { weight: 3, maxInFlight: 1 },
  hog: { weight: 3, maxInFlight: 1 },
};

const kFunctionOf: Record<Kind, string> = {
  healthy: "echo",
  malformed: "echo",
  "slow-consumer": "echo",
  disconnect: "echo",
  throw: "echo",
  stall: "staller",
  spin: "spinner",
  hog: "hog",
};

const kFaultCode: Partial<Record<Kind, string>> = {
  throw: "HANDLER_ERROR",
  stall: "HANDLER_STALLED",
  spin: "INSTANCE_UNRESPONSIVE",
  hog: "INSTANCE_OUT_OF_MEMORY",
};

/** Envelopes the server must refuse, each with the code it must refuse it with. */
const kMalformed: { text: string; code: string }[] = [
  { text: '{"data":', code: "INVALID_JSON" },
  { text: "not json", code: "INVALID_JSON" },
  { text: "[1,2]", code: "INVALID_ENVELOPE" },
  { text: '{"value":1}', code: "INVALID_ENVELOPE" },
  { text: '{"data":1,"extra":true}', code: "INVALID_ENVELOPE" },
  { text: '{"end":false}', code: "INVALID_ENVELOPE" },
  { text: '{"data":1,"seq":0}', code: "INVALID_SEQ" },
  { text: '{"data":1,"seq":"7"}', code: "INVALID_SEQ" },
  { text: `{"data":"${"x".repeat(17_000)}"}`, code: "EVENT_TOO_LARGE" },
];

export interface StreamResult {
  kind: Kind;
  protocol: Protocol;
  id: string;
  /** Events the server took (acknowledged or echoed). */
  events: number;
  outputs: number;
  /** Error records or refusals the stream got, as expected ones. */
  refusals: number;
  /** Slow consumers: whether the stream's status showed its handler held by output backpressure. */
  held?: boolean;
  mismatches: string[];
}

export interface ScenarioContext {
  base: string;
  /** Events of a healthy stream: 1 to this many. */
  maxEvents: number;
  random: () => number;
  timeoutMs: number;
}

const envelope = (id: string, i: number, pad = ""): string => JSON.stringify({ data: pad ? { id, i, pad } : { id, i }, seq: i });
const expected = (id: string, n: number, pad = ""): unknown[] => Array.from({ length: n }, (_, k) => (pad ? { id, i: k + 1, pad } : { id, i: k + 1 }));

/** Sends events `from`..`to` in chunks of up to 16 (one post or one write each). */
async function sendRange(conn: StreamConn, id: string, from: number, to: number, pad = ""): Promise<void> {
  for (let i = from; i <= to; i += 16) {
    const lines: string[] = [];
    for (let k = i; k <= Math.min(to, i + 15); k++) lines.push(envelope(id, k, pad));
    await conn.send(lines);
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(t);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

function compareOutputs(conn: StreamConn, want: unknown[], out: string[]): void {
  if (conn.misnumbered > 0) out.push(`${conn.misnumbered} output records out of sequence`);
  if (conn.outputs.length !== want.length) out.push(`${conn.outputs.length} outputs, expected ${want.length}`);
  const n = Math.min(conn.outputs.length, want.length);
  for (let i = 0; i < n; i++) {
    if (JSON.stringify(conn.outputs[i]) !== JSON.stringify(want[i])) {
      out.push(`output ${i + 1} is ${JSON.stringify(conn.outputs[i]).slice(0, 120)}, expected ${JSON.stringify(want[i]).slice(0, 120)}`);
      break;
    }
  }
}

function checkEnd(end: EndRecord | undefined, want: Partial<EndRecord> & { code?: string }, out: string[]): void {
  if (!end) {
    out.push("no end record");
    return;
  }
  for (const key of ["status", "reason", "events", "outputs"] as const) {
    if (want[key] !== undefined && end[key] !== want[key]) out.push(`end ${key} is ${JSON.stringify(end[key])}, expected ${JSON.stringify(want[key])}`);
  }
  if (want.code !== undefined && end.error?.code !== want.code) out.push(`end error ${JSON.stringify(end.error)}, expected code ${want.code}`);
}

/** The status of an ended stream, polled until it has ended (a producer that vanished gets no end record). */
async function endedStatus(base: string, fn: string, id: string, timeoutMs: number): Promise<Record<string, unknown> | undefined> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const res = await fetch(`${base}/v1/functions/${fn}/streams/${id}`);
    const body = (await res.json()) as Record<string, unknown>;
    if (res.status === 200 && body.state === "ended") return body;
    await new Promise((r) => setTimeout(r, 100));
  }
  return undefined;
}

/** Runs one stream of `kind` over `protocol` to its end and judges everything it got back. */
export async function runScenario(kind: Kind, protocol: Protocol, id: string, ctx: ScenarioContext): Promise<StreamResult> {
  const fn = kFunctionOf[kind];
  const result: StreamResult = { kind, protocol, id, events: 0, outputs: 0, refusals: 0, mismatches: [] };
  let conn: StreamConn | undefined;
  try {
    conn = await openStream(ctx.base, protocol, fn, id);
    await withTimeout(drive(kind, protocol, fn, id, conn, ctx, result), ctx.timeoutMs, `stream ${id} (${kind} over ${protocol})`);
  } catch (err) {
    result.mismatches.push((err as Error).message);
    conn?.abort();
  }
  if (conn) result.outputs = conn.outputs.length;
  return result;
}

async function drive(kind: Kind, protocol: Protocol, fn: string, id: string, conn: StreamConn, ctx: ScenarioContext, result: StreamResult): Promise<void> {
  const out = result.mismatches;
  const n = 1 + Math.floor(ctx.random() * ctx.maxEvents);
  switch (kind) {
    case "healthy": {
      await sendRange(conn, id, 1, n);
      await conn.finish();
      const end = await conn.ended;
      result.events = n;
      checkEnd(end, { status: "completed", reason: "end", events: n, outputs: n }, out);
      compareOutputs(conn, expected(id, n), out);
      if (conn.errors.length > 0) out.push(`unexpected errors ${conn.errors.join(",")}`);
      return;
    }
    case "malformed": {
      // Good events with bad envelopes between them: each bad one refused with its code, the rest exact.
      const bad: string[] = [];
      for (let i = 1; i <= n; i++) {
        await conn.send([envelope(id, i)]);
        if (ctx.random() < 0.3) {
          const m = kMalformed[Math.floor(ctx.random() * kMalformed.length)]!;
          bad.push(m.code);
          await conn.send([m.text]);
        }
      }
      await conn.finish();
      const end = await conn.ended;
      result.events = n;
      result.refusals = conn.errors.length;
      checkEnd(end, { status: "completed", reason: "end", events: n, outputs: n }, out);
      compareOutputs(conn, expected(id, n), out);
      if (conn.errors.join(",") !== bad.join(",")) out.push(`errors ${conn.errors.join(",")}, expected ${bad.join(",")}`);
      return;
    }
    case "slow-consumer": {
      // ~15 MB of outputs: more than loopback's socket buffers take while the reader stops for a
      // second, so the server has to hold the handler (output backpressure); every output must
      // still arrive, once, in order.
      const pad = "p".repeat(15_000);
      const count = Math.max(n, 1_000);
      await sendRange(conn, id, 1, 20, pad);
      conn.pauseReading(1_500);
      const sending = sendRange(conn, id, 21, count, pad);
      for (let i = 0; i < 12 && !result.held; i++) {
        await new Promise((r) => setTimeout(r, 100));
        const status = (await (await fetch(`${ctx.base}/v1/functions/${fn}/streams/${id}`)).json()) as { heldOutputs?: number };
        result.held = (status.heldOutputs ?? 0) > 0;
      }
      await sending;
      await conn.finish();
      const end = await conn.ended;
      result.events = count;
      checkEnd(end, { status: "completed", reason: "end", events: count, outputs: count }, out);
      compareOutputs(conn, expected(id, count, pad), out);
      return;
    }
    case "disconnect": {
      // The producer vanishes mid-stream, after the server took (and echoed) k events.
      const k = Math.max(1, Math.floor(n / 2));
      await sendRange(conn, id, 1, k);
      await conn.waitOutputs(k, ctx.timeoutMs);
      conn.abort();
      result.events = k;
      const status = await endedStatus(ctx.base, fn, id, ctx.timeoutMs);
      if (!status) {
        out.push("the stream did not end after its producer went away");
        return;
      }
      // Over HTTP nothing is connected: the stream ends when the producer has been quiet for idleTimeoutMs.
      const reason = protocol === "http" ? "idle" : "disconnect";
      if (status.status !== "completed" || status.reason !== reason || status.events !== k || status.outputs !== k) {
        out.push(`ended ${JSON.stringify({ status: status.status, reason: status.reason, events: status.events, outputs: status.outputs })}, expected completed/${reason} with ${k} events and outputs`);
      }
      compareOutputs(conn, expected(id, k), out);
      return;
    }
    default: {
      // A fault mid-stream: k events echoed, then the handler throws, stalls, spins or eats memory.
      const k = Math.max(1, Math.floor(n / 2));
      await sendRange(conn, id, 1, k);
      await conn.waitOutputs(k, ctx.timeoutMs);
      await conn.send([JSON.stringify({ data: { cmd: kind }, seq: k + 1 })]);
      // An event waiting behind the stalled handler is what makes it stalled.
      if (kind === "stall") await conn.send([envelope(id, k + 2)]);
      const end = await conn.ended;
      result.events = kind === "stall" ? k + 2 : k + 1;
      checkEnd(end, { status: "failed", reason: "error", code: kFaultCode[kind]! }, out);
      compareOutputs(conn, expected(id, k), out);
      conn.abort();
    }
  }
}
