import type { IncomingMessage, ServerResponse } from "node:http";
import { StreamfnError } from "../api/errors.js";
import type { ResolvedOptions } from "../api/types.js";
import type { BatchEvent, StreamTable } from "../router/stream-table.js";
import { callerOf } from "../auth/authorizer.js";
import { rateLimitedError } from "../auth/rate-limits.js";
import type { StreamLease } from "../auth/rate-limits.js";
import { kParseIt, scanEventEnvelope } from "./envelope-scan.js";
import { parseEnvelope } from "./envelope.js";
import { mediaType, readBody, sendJson } from "./http-util.js";
import { LineReader } from "./ndjson.js";
import type { StreamRoute } from "./routes.js";
import { endedStreamStatus, liveStreamStatus } from "./stream-status.js";

/** An NDJSON batch may be this big (or maxEventBytes, if that is bigger). */
export const kMaxBatchBytes = 4 * 1024 * 1024;

export const kEventMediaTypes = ["application/json", "application/x-ndjson", "application/octet-stream"];

interface Batch {
  events: BatchEvent[];
  /** The batch ends the stream's input after its events. */
  end: boolean;
}

/**
 * `POST …/streams/:streamId/events`: one envelope (application/json), a batch of envelopes
 * (application/x-ndjson) or one binary event (application/octet-stream, optional seq in the
 * `streamfn-seq` header). The first event opens the stream. A request is all or nothing: it
 * is validated whole, and refused whole with 429 when the stream's inbox has no room for it,
 * so resending it is always safe (seq-numbered events already taken are acknowledged as
 * duplicates, never delivered twice).
 */
export async function postEvents(
  table: StreamTable,
  req: IncomingMessage,
  res: ServerResponse,
  route: StreamRoute,
): Promise<void> {
  const functionName = route.functionName;
  const streamId = route.streamId!;
  const type = mediaType(req);
  if (!kEventMediaTypes.includes(type)) {
    throw new StreamfnError(
      "UNSUPPORTED_MEDIA_TYPE",
      `events are posted as ${kEventMediaTypes.join(", ")}; got ${type === "" ? "no content-type" : type}`,
    );
  }
  const live = table.get(functionName, streamId);
  const options = live?.options ?? table.limits(functionName);
  if (!options) throw new StreamfnError("FUNCTION_NOT_FOUND", `no function named "${functionName}"`);

  // Events are judged by a scan, not parsed, when the stream parses them where its handler runs.
  const scan = live?.forwardsEnvelopeText ?? table.forwardsEnvelopeText(functionName);
  const batch = await readBatch(req, res, type, options, functionName, scan);

  if (!table.get(functionName, streamId)) {
    const ended = table.ended(functionName, streamId);
    // A retry of a batch taken before the stream ended (its response was lost): every event
    // carries a seq the stream already took, so it is acknowledged again, as while it lived.
    if (ended && batch.events.length > 0 && batch.events.every((e) => e.seq !== undefined && e.seq <= (ended.lastSeq ?? 0))) {
      const body: Record<string, unknown> = { accepted: 0, duplicates: batch.events.length, lastSeq: ended.lastSeq ?? 0 };
      if (batch.end) body.ended = true;
      sendJson(res, 202, body);
      return;
    }
    if (ended && batch.events.length === 0 && batch.end) {
      sendJson(res, 202, { accepted: 0, duplicates: 0, lastSeq: ended.lastSeq ?? 0, ended: true });
      return;
    }
    // Ending a stream that never started opens nothing: the same answer as POST …/end.
    if (!ended && batch.events.length === 0 && batch.end) throw notFound(table, functionName, streamId);
  }
  const limits = callerOf(req)?.limits;
  let stream = table.get(functionName, streamId);
  // A request that opens the stream counts against streamsPerS and concurrentStreams.
  const lease: StreamLease | undefined = stream ? undefined : limits?.admitStream();
  try {
    if (limits && batch.events.length > 0) {
      // Judged before anything is taken, like the rest of the request: a 429 took nothing.
      let bytes = 0;
      for (const e of batch.events) bytes += e.bytes;
      const over = limits.chargeEvents(batch.events.length, bytes);
      if (over) throw rateLimitedError(over);
    }
    stream ??= await table.openOrGet(functionName, streamId);
  } catch (err) {
    lease?.release();
    throw err;
  }
  lease?.bind(stream, table);
  // A redeploy while the body was read may have put the stream on the inline tier, which
  // needs the values: a scanned event (the one kind with no data) is parsed now.
  if (scan && !stream.forwardsEnvelopeText) {
    for (const e of batch.events) {
      if (e.binary || e.data !== undefined) continue;
      const env = parseEnvelope(e.text!);
      if (!env.end) e.data = env.data;
    }
  }
  // All or nothing, judged by the table: refused whole (INBOX_FULL, STREAM_INPUT_ENDED…) or taken.
  const result = table.pushBatch(stream, batch.events, batch.end);
  const body: Record<string, unknown> = { accepted: result.accepted, duplicates: result.duplicates, lastSeq: result.lastSeq };
  if (result.ended) body.ended = true;
  if (result.rejected !== undefined) {
    body.rejected = result.rejected;
    body.error = result.error;
  }
  sendJson(res, 202, body);
}

/** `POST …/streams/:streamId/end`: no more events. Idempotent: answers with the stream's status. */
export function postEnd(table: StreamTable, res: ServerResponse, route: StreamRoute): void {
  const stream = table.get(route.functionName, route.streamId!);
  if (stream) table.endInput(stream, "end");
  sendJson(res, 202, streamStatus(table, route.functionName, route.streamId!));
}

/** A live or recently ended stream's status document; 404 for one the server does not know. */
export function streamStatus(table: StreamTable, fn: string, streamId: string): Record<string, unknown> {
  const stream = table.get(fn, streamId);
  if (stream) return liveStreamStatus(stream);
  const ended = table.ended(fn, streamId);
  if (ended) return endedStreamStatus(fn, streamId, ended);
  throw notFound(table, fn, streamId);
}

export function notFound(table: StreamTable, functionName: string, streamId: string): StreamfnError {
  if (!table.hasFunction(functionName)) return new StreamfnError("FUNCTION_NOT_FOUND", `no function named "${functionName}"`);
  return new StreamfnError(
    "STREAM_NOT_FOUND",
    `no stream "${streamId}" of ${functionName}: it never started, or it ended longer ago than the server remembers`,
  );
}

async function readBatch(
  req: IncomingMessage,
  res: ServerResponse,
  type: string,
  options: ResolvedOptions,
  functionName: string,
  scan: boolean,
): Promise<Batch> {
  /** The event as the scan judged it, or undefined when its text must be parsed. */
  const scanned = (raw: Uint8Array, bytes: number, text: string): BatchEvent | undefined => {
    const seq = scan ? scanEventEnvelope(raw) : kParseIt;
    return seq === kParseIt ? undefined : { data: undefined, seq: seq === 0 ? undefined : seq, binary: false, bytes, text };
  };
  const tooLarge = (bytes: number): StreamfnError =>
    new StreamfnError(
      "EVENT_TOO_LARGE",
      `event of ${bytes} bytes exceeds maxEventBytes (${options.maxEventBytes}) of ${functionName}`,
    );

  if (type === "application/octet-stream") {
    const seq = seqHeader(req.headers["streamfn-seq"]);
    const body = await readBody(req, res, options.maxEventBytes, tooLarge);
    return { events: [{ data: ownArrayBuffer(body), seq, binary: true, bytes: body.byteLength }], end: false };
  }

  if (type === "application/json") {
    const body = await readBody(req, res, options.maxEventBytes, tooLarge);
    const text = body.toString("utf8");
    const event = scanned(body, body.byteLength, text);
    if (event) return { events: [event], end: false };
    const env = parseEnvelope(text);
    if (env.end) return { events: [], end: true };
    // The text goes to the instance, not the parsed data: a value nested thousands deep parses
    // here but overflows the stack of a structured clone (postMessage) or JSON.stringify.
    return { events: [{ data: env.data, seq: env.seq, binary: false, bytes: body.byteLength, text }], end: false };
  }

  const limit = Math.max(kMaxBatchBytes, options.maxEventBytes);
  const body = await readBody(
    req,
    res,
    limit,
    (bytes) => new StreamfnError("BATCH_TOO_LARGE", `a batch of ${bytes} bytes exceeds ${limit} bytes; send it in parts`),
  );
  const batch: Batch = { events: [], end: false };
  let problem: StreamfnError | undefined;
  const at = (lineNo: number, err: unknown): StreamfnError => {
    const e = err instanceof StreamfnError ? err : new StreamfnError("INTERNAL", String(err));
    return new StreamfnError(e.code, `line ${lineNo}: ${e.message}; nothing of this batch was taken`);
  };
  const reader = new LineReader(options.maxEventBytes, {
    line(text, bytes, lineNo, raw) {
      if (problem) return;
      try {
        if (batch.end) {
          throw new StreamfnError("INVALID_ENVELOPE", `an event follows {"end": true}`);
        }
        const event = scanned(raw, bytes, text);
        if (event) {
          batch.events.push(event);
          return;
        }
        const env = parseEnvelope(text);
        if (env.end) batch.end = true;
        else batch.events.push({ data: env.data, seq: env.seq, binary: false, bytes, text });
      } catch (err) {
        if (text.trim() !== "") problem = at(lineNo, err);
      }
    },
    tooLong(bytes, lineNo) {
      problem ??= at(lineNo, tooLarge(bytes));
    },
    finished() {},
  });
  reader.push(body);
  reader.end();
  if (problem) throw problem;
  if (batch.events.length === 0 && !batch.end) {
    throw new StreamfnError("INVALID_REQUEST", "the batch holds no events: send one envelope per line");
  }
  if (batch.events.length > options.inboxLimit) {
    throw new StreamfnError(
      "BATCH_TOO_LARGE",
      `a batch of ${batch.events.length} events exceeds the stream's inboxLimit (${options.inboxLimit}); send it in parts`,
    );
  }
  return batch;
}

function seqHeader(value: string | string[] | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = typeof value === "string" && /^\d{1,15}$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new StreamfnError("INVALID_SEQ", `the streamfn-seq header must be a positive integer, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** An ArrayBuffer holding exactly the body's bytes, safe to transfer to an instance (never a shared pool slab). */
function ownArrayBuffer(buf: Buffer): ArrayBuffer {
  // An empty body may be a shared empty Buffer: transferring it would detach it for its other users.
  if (buf.byteLength === 0) return new ArrayBuffer(0);
  const ab = buf.buffer as ArrayBuffer;
  if (buf.byteOffset === 0 && buf.byteLength === ab.byteLength) return ab;
  return ab.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
}
