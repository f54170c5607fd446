import type { IncomingMessage, ServerResponse } from "node:http";
import { StreamfnError } from "../api/errors.js";
import type { ErrorRecord } from "../api/errors.js";
import type { EndRecord, StreamHandle, StreamTable } from "../router/stream-table.js";
import { parseEnvelope } from "./envelope.js";
import type { Envelope } from "./envelope.js";
import { LineReader } from "./ndjson.js";
import type { LineHandler } from "./ndjson.js";
import { errorRecord, openRecord, outputRecord } from "./records.js";
import { ResponseSink } from "./response-sink.js";
import type { StreamRoute } from "./routes.js";

/** Body bytes still read (and dropped) after the stream ended, before the connection is cut instead. */
const kDrainLimit = 1024 * 1024;

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
  const stream = await table.open(route.functionName, route.streamId, sink);
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
  new NdjsonSession(table, stream, req, res, sink);
}

class NdjsonSession implements LineHandler {
  readonly #table: StreamTable;
  readonly #stream: StreamHandle;
  readonly #req: IncomingMessage;
  readonly #sink: NdjsonSink;
  readonly #reader: LineReader;
  #drained = 0;
  #gone = false;

  constructor(table: StreamTable, stream: StreamHandle, req: IncomingMessage, res: ServerResponse, sink: NdjsonSink) {
    this.#table = table;
    this.#stream = stream;
    this.#req = req;
    this.#sink = sink;
    this.#reader = new LineReader(stream.options.maxEventBytes, this);

    table.attachProducer(stream, {
      pause: () => {
        this.#reader.pause();
        req.pause();
      },
      resume: () => {
        if (this.#reader.resume()) req.resume();
      },
    });
    req.on("data", (chunk: Buffer) => this.#onData(chunk));
    req.on("end", () => this.#reader.end());
    req.on("error", () => {
      // 'close' on the response follows.
    });
    res.on("close", () => {
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

  line(text: string, bytes: number, lineNo: number): void {
    const stream = this.#stream;
    if (stream.state === "done" || this.#gone) return;
    let env: Envelope | undefined;
    try {
      env = parseEnvelope(text);
      if (env.end) this.#table.endInput(stream, "end");
      // The line's text goes to the instance (as over WebSocket), never the parsed value: see postEvents.
      else this.#table.push(stream, env.data, env.seq, false, bytes, text);
    } catch (err) {
      if (env === undefined && text.trim() === "") return;
      const seq = env && !env.end ? env.seq : seqHint(text);
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
    this.#table.endInput(this.#stream, "end");
  }
}

function toRecord(err: unknown): ErrorRecord {
  if (err instanceof StreamfnError) return err.toRecord();
  return { code: "INTERNAL", message: err instanceof Error ? err.message : String(err) };
}

/** Best effort: the seq of a line that did not parse, so the producer knows which one to resend. */
function seqHint(text: string): number | undefined {
  if (text.length > 1_000_000) return undefined;
  const m = /"seq"\s*:\s*(\d{1,15})/.exec(text);
  return m ? Number(m[1]) : undefined;
}
