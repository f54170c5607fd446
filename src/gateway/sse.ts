import type { IncomingMessage, ServerResponse } from "node:http";
import { StreamfnError } from "../api/errors.js";
import type { EndRecord, EndedStream, OutputSink, RetainedOutput, StreamHandle, StreamTable } from "../router/stream-table.js";
import { notFound } from "./http-events.js";
import { errorRecord, outputRecord } from "./records.js";
import { ResponseSink } from "./response-sink.js";
import type { StreamRoute } from "./routes.js";

/** Every output is written to every sink: the fan-out per stream is bounded like any queue. */
const kMaxSinksPerStream = 64;

function tooManySubscribers(functionName: string, streamId: string): StreamfnError {
  return new StreamfnError(
    "CAPACITY_EXCEEDED",
    `stream "${streamId}" of ${functionName} already has ${kMaxSinksPerStream} output subscribers`,
    { retryAfterMs: 1000 },
  );
}

/** How long a subscriber waits for a stream that has not opened yet. */
const kOpenWaitMs = 60_000;
/** A comment line this often keeps idle subscriptions open through proxies. */
const kHeartbeatMs = 15_000;

/** Outputs as server-sent events: `id` is the output number, so a reconnect resumes after it. */
class SseSink extends ResponseSink {
  /** Outputs up to this number are the subscriber's already. */
  readonly after: number;
  #heartbeat: NodeJS.Timeout | undefined;

  /** Longest this subscriber may hold the stream's handler back by not reading; set once it follows a stream. */
  maxHoldMs = 30_000;
  #holdTimer: NodeJS.Timeout | undefined;

  /**
   * A subscriber is not the stream's owner: one that stops reading holds the handler (that is
   * backpressure) but only for `maxHoldMs`; then it is cut off, freeing the stream, and may
   * come back with Last-Event-ID. Otherwise any reader could pin any stream and its slot.
   */
  override backedUp(): boolean {
    const held = super.backedUp();
    if (held && !this.#holdTimer) {
      this.#holdTimer = setTimeout(() => {
        this.#holdTimer = undefined;
        if (super.backedUp()) this.res.destroy();
      }, this.maxHoldMs);
      this.#holdTimer.unref();
    } else if (!held && this.#holdTimer) {
      clearTimeout(this.#holdTimer);
      this.#holdTimer = undefined;
    }
    return held;
  }

  constructor(res: ServerResponse, after: number) {
    super(res);
    this.after = after;
    this.#heartbeat = setInterval(() => this.write(": ping\n\n"), kHeartbeatMs);
    this.#heartbeat.unref();
    res.once("close", () => this.stopHeartbeat());
  }

  output(n: number, json: string | undefined, bytes: Uint8Array | undefined): void {
    if (n <= this.after) return;
    this.write(`id: ${n}\nevent: output\ndata: ${outputRecord(n, json, bytes)}\n\n`);
  }

  replay(outputs: readonly RetainedOutput[]): void {
    let text = "";
    for (const o of outputs) {
      if (o.n > this.after) text += `id: ${o.n}\nevent: output\ndata: ${outputRecord(o.n, o.json, o.bytes)}\n\n`;
    }
    if (text) this.write(text);
  }

  expired(code: "OUTPUTS_EXPIRED", message: string): void {
    this.write(`event: error\ndata: ${errorRecord({ code, message })}\n\n`);
  }

  end(record: EndRecord): void {
    this.stopHeartbeat();
    this.finish(`event: end\ndata: ${JSON.stringify(record)}\n\n`);
  }

  stopHeartbeat(): void {
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
    if (this.#holdTimer) clearTimeout(this.#holdTimer);
    this.#holdTimer = undefined;
  }
}

/**
 * `GET …/streams/:streamId/outputs`: the stream's outputs as server-sent events. Replays the
 * retained outputs after `Last-Event-ID` (or `?from=`; default 0, i.e. all), then follows the
 * live stream, then sends `event: end` and closes. Outputs that are no longer retained are
 * announced with an `error` event (OUTPUTS_EXPIRED) naming the gap, never skipped silently.
 * A stream that ended within the retention window still replays what it kept.
 */
export async function serveOutputs(
  table: StreamTable,
  req: IncomingMessage,
  res: ServerResponse,
  route: StreamRoute,
  url: URL,
): Promise<void> {
  const { functionName } = route;
  const streamId = route.streamId!;
  const after = resumePoint(req, url);
  let stream = table.get(functionName, streamId);
  let ended = stream ? undefined : table.ended(functionName, streamId);
  if (!stream && !ended && !table.hasFunction(functionName)) throw notFound(table, functionName, streamId);
  if (!stream && !ended && table.followLog) {
    // Opened through another gateway: its outputs come from the shared output log.
    const logSink = new SseSink(res, after);
    let started = false;
    const start = (): void => {
      if (started) return;
      started = true;
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store", "x-accel-buffering": "no" });
      logSink.write(`: outputs of ${functionName}/${streamId}\n\n`);
    };
    const relay: OutputSink = {
      output: (n, json, bytes) => {
        start();
        logSink.output(n, json, bytes);
      },
      end: (record) => {
        start();
        logSink.end(record);
      },
    };
    const stop = await table.followLog(functionName, streamId, after, relay);
    if (stop) {
      start();
      res.once("close", stop);
      return;
    }
    stream = table.get(functionName, streamId);
    ended = stream ? undefined : table.ended(functionName, streamId);
  }
  if (stream && stream.subscribers >= kMaxSinksPerStream) throw tooManySubscribers(functionName, streamId);

  let cancelWait: (() => void) | undefined;
  if (!stream && !ended) {
    // Not open yet: wait for it, so a subscriber may connect before the producer's first event.
    cancelWait = table.awaitOpen(functionName, streamId, (s) => {
      clearTimeout(timer);
      follow(s);
    });
    if (!cancelWait) {
      throw new StreamfnError("CAPACITY_EXCEEDED", "too many subscribers are waiting for streams to open", {
        retryAfterMs: 1000,
      });
    }
  }

  res.writeHead(200, {
    "content-type": "text/event-stream",
    "cache-control": "no-store",
    "x-accel-buffering": "no",
  });
  const sink = new SseSink(res, after);
  sink.write(`: outputs of ${functionName}/${streamId}\n\n`);
  const timer = cancelWait
    ? setTimeout(() => {
        cancelWait?.();
        sink.stopHeartbeat();
        sink.finish(
          `event: error\ndata: ${errorRecord({
            code: "STREAM_NOT_FOUND",
            message: `stream "${streamId}" of ${functionName} did not open within ${kOpenWaitMs} ms`,
          })}\n\n`,
        );
      }, kOpenWaitMs)
    : undefined;
  timer?.unref();
  if (cancelWait) {
    res.once("close", () => {
      clearTimeout(timer);
      cancelWait?.();
    });
    return;
  }
  if (stream) follow(stream);
  else replayEnded(ended!);

  function follow(s: StreamHandle): void {
    if (s.subscribers >= kMaxSinksPerStream) {
      sink.stopHeartbeat();
      sink.finish(`event: error\ndata: ${errorRecord(tooManySubscribers(functionName, streamId).toRecord())}\n\n`);
      return;
    }
    sink.maxHoldMs = s.options.stallTimeoutMs;
    // Runs in one turn: no output can slip between the replay and the live sink.
    announceGap(s.retained, s.outputs);
    sink.replay(s.retained);
    table.addSink(s, sink);
    res.once("close", () => {
      if (s.state !== "done") table.removeSink(s, sink);
    });
  }

  function replayEnded(e: EndedStream): void {
    const retained = e.retained ?? [];
    announceGap(retained, e.outputs);
    sink.replay(retained);
    const record: EndRecord = { type: "end", status: e.status, reason: e.reason, events: e.events, outputs: e.outputs };
    if (e.error) record.error = e.error;
    sink.end(record);
  }

  function announceGap(retained: readonly RetainedOutput[], total: number): void {
    const firstKept = retained.length > 0 ? retained[0]!.n : total + 1;
    if (after + 1 < firstKept && after < total) {
      const last = Math.min(firstKept - 1, total);
      const range = after + 1 === last ? `output ${last} is` : `outputs ${after + 1}-${last} are`;
      sink.expired(
        "OUTPUTS_EXPIRED",
        `${range} no longer retained (only the most recent outputs are kept)` +
          (firstKept <= total ? `; continuing from output ${firstKept}` : ""),
      );
    }
  }
}

/** The last output number the subscriber has: `Last-Event-ID` (set by EventSource on reconnect) wins over `?from=`. */
function resumePoint(req: IncomingMessage, url: URL): number {
  const header = req.headers["last-event-id"];
  const raw = typeof header === "string" && header.trim() !== "" ? header.trim() : url.searchParams.get("from");
  if (raw === null || raw === "") return 0;
  if (!/^\d{1,15}$/.test(raw)) {
    throw new StreamfnError(
      "INVALID_REQUEST",
      `Last-Event-ID / ?from= must be an output number (a non-negative integer), got ${JSON.stringify(raw.slice(0, 40))}`,
    );
  }
  return Number(raw);
}
