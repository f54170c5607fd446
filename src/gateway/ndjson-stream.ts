import type { IncomingMessage, ServerResponse } from "node:http";
import { StreamfnError } from "../api/errors.js";
import type { ErrorRecord } from "../api/errors.js";
import type { EndRecord, StreamHandle, StreamTable } from "../router/stream-table.js";
import { callerOf } from "../auth/authorizer.js";
import type { ClientLimits } from "../auth/rate-limits.js";
import { pushScanned } from "./envelope-scan.js";
import { parseEnvelope, seqAsSent } from "./envelope.js";
import type { Envelope } from "./envelope.js";
import { LineReader } from "./ndjson.js";
import type { LineHandler } from "./ndjson.js";
import { errorRecord, openRecord, outputRecord } from "./records.js";
import { ResponseSink } from "./response-sink.js";
import type { StreamRoute } from "./routes.js";

/** Body bytes still read (and dropped) after the stream ended, before the connection is cut instead. */
const kDrainLimit = 1024 * 1024;
/** A producer held back by its rate limit hears about it at most this often. */
const kLimitNoticeMs = 1000;

/** The stream's records as NDJSON lines on the response. */
class NdjsonSink extends ResponseSink {
  output(n: number, json: string | undefined, bytes: Uint8Array | undefined): void {
    this.write(`${outputRecord(n, json, bytes)}\n`);
  }

  error(record: ErrorRecord, seq: number | undefined, line: number | undefined): void {
    this.write(`${errorRecord(record, seq, line)}\n`);
  }

  end(record: EndRecord): void {
    this.finish(`${JSON.stringify(record)}\n`);
  }
}

/**
 * A whole stream over one HTTP request: the request body is NDJSON envelopes, read as they
 * arrive; the response streams `open`, `output`, `error` and `end` records as NDJSON while
 * the body is still coming in. The body's end is the stream's end; a connection lost before
 * it is a disconnect. While the stream's inbox is full the body is not read, so TCP flow
 * control slows the uploader down to the handler's pace.
 */
export async function serveNdjsonStream(table: StreamTable, req: IncomingMessage, res: ServerResponse, route: StreamRoute): Promise<void> {
  const sink = new NdjsonSink(res);
  const limits = callerOf(req)?.limits;
  // Over streamsPerS or concurrentStreams: 429 with Retry-After, before the body is read.
  const lease = limits?.admitStream();
  let stream: StreamHandle;
  try {
    stream = await table.open(route.functionName, route.streamId, sink);
  } catch (err) {
    lease?.release();
    throw err;
  }
  lease?.bind(stream, table);
  if (res.destroyed) {
    // The client left while a remote table was opening the stream.
    table.abandon(stream);
    return;
  }
  res.writeHead(200, {
    "content-type": "application/x-ndjson",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "streamfn-stream-id": stream.streamId,
  });
  sink.write(`${openRecord(stream.functionName, stream.streamId, stream.version)}\n`);
  new NdjsonSession(table, stream, req, res, sink, limits);
}

class NdjsonSession implements LineHandler {
  readonly #table: StreamTable;
  readonly #stream: StreamHandle;
  readonly #req: IncomingMessage;
  readonly #sink: NdjsonSink;
  readonly #reader: LineReader;
  readonly #limits: ClientLimits | undefined;
  #drained = 0;
  #gone = false;
  /** Paused by the stream's inbox (flow control). */
  #flowPaused = false;
  /** Paused by the client's rate limit until this timer fires; `#held` is the line that waits. */
  #limited: NodeJS.Timeout | undefined;
  #held: { text: string; bytes: number; lineNo: number } | undefined;
  #finishHeld = false;
  #noticeAt = -Infinity;

  constructor(table: StreamTable, stream: StreamHandle, req: IncomingMessage, res: ServerResponse, sink: NdjsonSink, limits: ClientLimits | undefined) {
    this.#table = table;
    this.#stream = stream;
    this.#req = req;
    this.#sink = sink;
    this.#limits = limits;
    this.#reader = new LineReader(stream.options.maxEventBytes, this);

    table.attachProducer(stream, {
      pause: () => {
        this.#flowPaused = true;
        this.#reader.pause();
        req.pause();
      },
      resume: () => {
        this.#flowPaused = false;
        this.#wake();
      },
    });
    req.on("data", (chunk: Buffer) => this.#onData(chunk));
    req.on("end", () => this.#reader.end());
    req.on("error", () => {
      // 'close' on the response follows.
    });
    res.on("close", () => {
      clearTimeout(this.#limited);
      if (res.writableFinished || stream.state === "done") return;
      this.#gone = true;
      table.removeSink(stream, sink);
      table.endInput(stream, "disconnect");
    });
  }

  #onData(chunk: Buffer): void {
    if (this.#stream.state === "done") {
      // The stream is over (its response has ended): drop the rest of the body, up to a point.
      this.#drained += chunk.length;
      if (this.#drained > kDrainLimit) this.#cut();
      return;
    }
    if (!this.#reader.push(chunk)) this.#req.pause();
  }

  #cut(): void {
    const res = this.#sink.res;
    const socket = this.#req.socket;
    if (res.writableFinished) socket.destroy();
    else res.once("finish", () => socket.destroy());
    this.#req.pause();
  }

  /** Reads on when neither the inbox nor the rate limit holds the body back: the held line first. */
  #wake(): void {
    if (this.#flowPaused || this.#limited) return;
    const held = this.#held;
    if (held) {
      this.#held = undefined;
      this.line(held.text, held.bytes, held.lineNo);
      if (this.#flowPaused || this.#limited) return;
      if (this.#finishHeld) {
        this.#finishHeld = false;
        this.finished();
        return;
      }
    }
    if (this.#reader.resume()) this.#req.resume();
  }

  /** `raw` is absent for a line that waited on the rate limit: it takes the parse path. */
  line(text: string, bytes: number, lineNo: number, raw?: Uint8Array): void {
    const stream = this.#stream;
    if (stream.state === "done" || this.#gone) return;
    if (this.#limits) {
      const over = this.#limits.chargeEvents(1, bytes);
      if (over) {
        // The line waits; the body is not read until the client's bucket has room again.
        this.#held = { text, bytes, lineNo };
        this.#reader.pause();
        this.#req.pause();
        const now = performance.now();
        if (now - this.#noticeAt >= kLimitNoticeMs) {
          this.#noticeAt = now;
          this.#sink.write(`${JSON.stringify({ type: "error", code: "RATE_LIMITED", message: over.message, limit: over.limit, retryAfterMs: over.waitMs, line: lineNo })}\n`);
        }
        this.#limited = setTimeout(() => {
          this.#limited = undefined;
          this.#wake();
        }, over.waitMs);
        return;
      }
    }
    let env: Envelope | undefined;
    try {
      // As over WebSocket: judged without being parsed where it can be.
      if (raw !== undefined && pushScanned(this.#table, stream, raw, bytes, text)) return;
      env = parseEnvelope(text);
      if (env.end) this.#table.endInput(stream, "end");
      // The line's text goes to the instance (as over WebSocket), never the parsed value: see postEvents.
      else this.#table.push(stream, env.data, env.seq, false, bytes, text);
    } catch (err) {
      if (env === undefined && text.trim() === "") return;
      const seq = env && !env.end ? env.seq : seqAsSent(text);
      this.#sink.error(toRecord(err), seq, lineNo);
    }
  }

  tooLong(bytes: number, lineNo: number): void {
    if (this.#stream.state === "done" || this.#gone) return;
    const o = this.#stream.options;
    this.#sink.error(
      {
        code: "EVENT_TOO_LARGE",
        message: `line of ${bytes} bytes exceeds maxEventBytes (${o.maxEventBytes}) of ${this.#stream.functionName}`,
      },
      undefined,
      lineNo,
    );
  }

  finished(): void {
    // The body ended while its last line waits for the rate limit: the end comes after it.
    if (this.#held) {
      this.#finishHeld = true;
      return;
    }
    this.#table.endInput(this.#stream, "end");
  }
}

function toRecord(err: unknown): ErrorRecord {
  if (err instanceof StreamfnError) return err.toRecord();
  return { code: "INTERNAL", message: err instanceof Error ? err.message : String(err) };
}
