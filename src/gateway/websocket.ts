import { STATUS_CODES } from "node:http";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { Socket } from "node:net";
import { WebSocketServer } from "ws";
import type { WebSocket } from "ws";
import { StreamfnError } from "../api/errors.js";
import type { ErrorRecord } from "../api/errors.js";
import type { EndReason } from "../api/types.js";
import type { EndRecord, OutputSink, StreamHandle, StreamTable } from "../router/stream-table.js";
import { callerOf } from "../auth/authorizer.js";
import type { ClientLimits, StreamLease } from "../auth/rate-limits.js";

import { parseEnvelope, seqAsSent } from "./envelope.js";
import { pushScanned } from "./envelope-scan.js";
import type { StreamRoute } from "./routes.js";

/** Unsent bytes on a socket above which the stream's handler is held (output backpressure). */
const kSocketHighWater = 1024 * 1024;
/** ws refuses larger frames outright (closing the socket); events up to this reach our own check, which answers with an error record instead. */
const kMaxFrameBytes = 64 * 1024 * 1024;
/** A producer held back by its rate limit hears about it at most this often (the wait itself is backpressure). */
const kLimitNoticeMs = 1000;

/**
 * The WebSocket protocol: one connection carries one stream. Text frames are JSON envelopes,
 * binary frames are events whose payload is the bytes. Outputs, errors and the end record
 * come back as JSON text frames (binary outputs as a record followed by a binary frame).
 */
export class WebSocketGateway {
  readonly #wss = new WebSocketServer({ noServer: true, maxPayload: kMaxFrameBytes, perMessageDeflate: false });
  readonly #table: StreamTable;
  /** Connections that answered the last ping (or sent anything since). */
  readonly #alive = new WeakSet<WebSocket>();
  readonly #heartbeat: NodeJS.Timeout | undefined;

  /**
   * `pingIntervalMs`: a peer that answers no ping for this long is cut off, which ends its
   * stream's input (`disconnect`) and releases a handler held by output backpressure. Without
   * it a client that vanished without a FIN would hold its stream until max duration.
   */
  constructor(table: StreamTable, pingIntervalMs = 30_000) {
    this.#table = table;
    if (pingIntervalMs > 0) {
      this.#heartbeat = setInterval(() => this.#ping(), pingIntervalMs);
      this.#heartbeat.unref();
    }
  }

  #ping(): void {
    for (const ws of this.#wss.clients) {
      // A connection we paused (its stream's inbox is full) cannot read the pong: not its fault.
      if (!this.#alive.has(ws) && !ws.isPaused) {
        ws.terminate();
        continue;
      }
      this.#alive.delete(ws);
      ws.ping();
    }
  }

  get connections(): number {
    return this.#wss.clients.size;
  }

  /**
   * Opens the stream before answering the handshake, so an unknown function, an ended stream
   * or a full pool gets a plain HTTP status and JSON body instead of a connection that dies.
   */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, route: StreamRoute): void {
    const sink = new WebSocketSink(socket as Socket);
    const limits = callerOf(req)?.limits;
    let opened: StreamHandle | Promise<StreamHandle>;
    let lease: StreamLease | undefined;
    try {
      // Over streamsPerS or concurrentStreams: refused as a plain 429 with Retry-After.
      lease = limits?.admitStream();
      opened = this.#table.open(route.functionName, route.streamId, sink, resumeOf(req));
    } catch (err) {
      lease?.release();
      rejectUpgrade(socket, err);
      return;
    }
    // The embedded table answers at once; a remote one later, and then the client may have
    // left in the meantime.
    if (opened instanceof Promise) {
      opened.then(
        (stream) => this.#handshake(req, socket, head, stream, sink, limits, lease),
        (err: unknown) => {
          lease?.release();
          rejectUpgrade(socket, err);
        },
      );
    } else {
      this.#handshake(req, socket, head, opened, sink, limits, lease);
    }
  }

  #handshake(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    stream: StreamHandle,
    sink: WebSocketSink,
    limits: ClientLimits | undefined,
    lease: StreamLease | undefined,
  ): void {
    lease?.bind(stream, this.#table);
    if (socket.destroyed) {
      this.#table.abandon(stream);
      return;
    }
    // A handshake that ws refuses (bad headers) or that the client drops never reaches the
    // callback: the stream opened for it must not keep its id busy until it idles out.
    socket.once("close", () => {
      if (!sink.ws) this.#table.abandon(stream);
    });
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      sink.ws = ws;
      this.#serve(ws, stream, sink, limits);
    });
  }

  /**
   * Closes every connection: normally (1001) so the records already written, the end record
   * among them, still reach the peer; whatever has not closed within `graceMs` is cut off.
   */
  async close(graceMs = 1_000): Promise<void> {
    clearInterval(this.#heartbeat);
    const open = [...this.#wss.clients];
    for (const ws of open) ws.close(1001, "server shutting down");
    const deadline = Date.now() + graceMs;
    while (open.some((ws) => ws.readyState !== ws.CLOSED) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    for (const ws of open) ws.terminate();
    this.#wss.close();
  }

  #serve(ws: WebSocket, stream: StreamHandle, sink: WebSocketSink, limits: ClientLimits | undefined): void {
    const table = this.#table;
    this.#alive.add(ws);
    ws.on("pong", () => this.#alive.add(ws));
    sink.send(
      `{"type":"open","function":${JSON.stringify(stream.functionName)},"streamId":${JSON.stringify(stream.streamId)},"version":"${stream.version}"}`,
    );
    if (stream.state === "done") {
      // The stream failed before the handshake finished (its instance could not start).
      sink.flushEnd();
      return;
    }
    // ws.pause() stops reading the socket, but frames ws already parsed from the last read keep
    // arriving (up to one socket read, ~64 KiB). Pushing them would overflow the inbox's hard
    // cap and refuse events of a producer that did nothing wrong; they wait here, in order, and
    // go to the table as the handler makes room. The same goes for a close that arrives behind
    // held frames: the input ends only after them.
    const held: { data: Buffer; isBinary: boolean }[] = [];
    let paused = false;
    let draining = false;
    let closedAs: EndReason | undefined;
    // Over the client's eventsPerS or bytesPerS: the socket is not read until the bucket has
    // room, and the frame that found it empty waits at the head of `held`. Nothing is dropped.
    let limited: NodeJS.Timeout | undefined;
    let noticeAt = -Infinity;

    /** Charges a frame to the client's rate limits; false: it must wait (reading stopped). */
    const admit = (data: Buffer): boolean => {
      if (!limits || stream.state === "done") return true;
      const over = limits.chargeEvents(1, data.byteLength);
      if (!over) return true;
      ws.pause();
      const now = performance.now();
      if (now - noticeAt >= kLimitNoticeMs) {
        noticeAt = now;
        sink.send(JSON.stringify({ type: "error", code: "RATE_LIMITED", message: over.message, limit: over.limit, retryAfterMs: over.waitMs }));
      }
      limited = setTimeout(() => {
        limited = undefined;
        drain();
      }, over.waitMs);
      return false;
    };

    const handle = (data: Buffer, isBinary: boolean): void => {
      if (stream.state === "done") {
        sink.error({ code: "STREAM_ENDED", message: `stream "${stream.streamId}" already ended` });
        return;
      }
      try {
        if (isBinary) {
          table.push(stream, ownArrayBuffer(data), undefined, true, data.byteLength);
          return;
        }
        if (data.byteLength > stream.options.maxEventBytes) {
          throw new StreamfnError(
            "EVENT_TOO_LARGE",
            `message of ${data.byteLength} bytes exceeds maxEventBytes (${stream.options.maxEventBytes}) of ${stream.functionName}`,
          );
        }
        const text = data.toString("utf8");
        // Judged without being parsed where it can be: it is parsed once, where the handler runs.
        if (pushScanned(table, stream, data, data.byteLength, text)) return;
        const env = parseEnvelope(text);
        if (env.end) table.endInput(stream, "end");
        else table.push(stream, env.data, env.seq, false, data.byteLength, text);
      } catch (err) {
        sink.error(toRecord(err), isBinary ? undefined : seqAsSent(data.toString("utf8")));
        // Error records are the one thing a producer can make the server write without the
        // handler's say: one that floods bad messages and reads none of the answers is cut off
        // rather than let the socket's unsent buffer grow.
        // (terminate, not close: a peer that reads nothing would not answer a close handshake either.)
        if (sink.backedUp()) ws.terminate();
      }
    };

    const drain = (): void => {
      if (draining) return; // a resume from inside handle(): the loop below carries on
      draining = true;
      while (!paused && !limited && held.length > 0) {
        if (!admit(held[0]!.data)) break;
        const m = held.shift()!;
        handle(m.data, m.isBinary);
      }
      draining = false;
      if (paused || limited) return;
      if (closedAs !== undefined) table.endInput(stream, closedAs);
      else ws.resume();
    };

    table.attachProducer(stream, {
      pause: () => {
        paused = true;
        ws.pause();
      },
      resume: () => {
        paused = false;
        drain();
      },
    });

    ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (paused || limited || held.length > 0 || !admit(data)) held.push({ data, isBinary });
      else handle(data, isBinary);
    });

    ws.on("close", (code: number) => {
      if (stream.state === "done") {
        clearTimeout(limited);
        return;
      }
      table.removeSink(stream, sink);
      closedAs = code === 1000 || code === 1001 || code === 1005 ? "end" : "disconnect";
      if (held.length === 0) table.endInput(stream, closedAs);
    });
    ws.on("error", () => {
      // 'close' follows and ends the stream's input.
    });
  }
}

/** The stream's outputs to its producer's connection, corked per event-loop turn. */
class WebSocketSink implements OutputSink {
  ws: WebSocket | undefined;
  #corked = false;
  #pendingEnd: EndRecord | undefined;

  constructor(readonly socket: Socket) {}

  output(n: number, json: string | undefined, bytes: Uint8Array | undefined): void {
    if (json !== undefined) {
      this.send(`{"type":"output","n":${n},"data":${json}}`);
    } else {
      this.send(`{"type":"output","n":${n},"binary":true}`);
      this.#cork();
      this.ws?.send(bytes!, { binary: true });
    }
  }

  error(record: ErrorRecord, seq?: number): void {
    const body: Record<string, unknown> = { type: "error", code: record.code, message: record.message };
    if (seq !== undefined) body.seq = seq;
    this.send(JSON.stringify(body));
  }

  end(record: EndRecord): void {
    if (!this.ws) {
      this.#pendingEnd = record;
      return;
    }
    this.send(JSON.stringify(record));
    this.ws.close(1000, record.status);
  }

  detach(record: ErrorRecord): void {
    this.error(record);
    this.ws?.close(4409, record.code);
  }

  flushEnd(): void {
    if (this.#pendingEnd) this.end(this.#pendingEnd);
  }

  backedUp(): boolean {
    return this.socket.writableLength > kSocketHighWater;
  }

  onceWritable(cb: () => void): void {
    let done = false;
    const once = (): void => {
      if (done) return;
      done = true;
      this.socket.off("drain", once);
      this.socket.off("close", once);
      cb();
    };
    this.socket.on("drain", once);
    this.socket.on("close", once);
  }

  send(text: string): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== 1) return;
    this.#cork();
    ws.send(text);
  }

  flush(): void {
    this.#uncork();
  }

  #cork(): void {
    if (this.#corked) return;
    this.#corked = true;
    this.socket.cork();
    process.nextTick(this.#uncork);
  }

  // After a flush() the turn's tick finds nothing corked, or uncorks a later cork early:
  // every cork() still gets exactly one uncork().
  readonly #uncork = (): void => {
    if (!this.#corked) return;
    this.#corked = false;
    this.socket.uncork();
  };
}

/** An ArrayBuffer holding exactly the frame's bytes, which is safe to transfer to an instance. */
function ownArrayBuffer(buf: Buffer): ArrayBuffer {
  // ws hands every empty message the same module-wide empty Buffer: transferring its memory
  // would detach it for every other WebSocket in the process.
  if (buf.byteLength === 0) return new ArrayBuffer(0);
  const ab = buf.buffer as ArrayBuffer;
  if (buf.byteOffset === 0 && buf.byteLength === ab.byteLength) return ab;
  // The frame shares memory with the socket's read buffer: one copy makes it ours.
  return ab.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
}

function toRecord(err: unknown): ErrorRecord {
  if (err instanceof StreamfnError) return err.toRecord();
  return { code: "INTERNAL", message: err instanceof Error ? err.message : String(err) };
}

export function rejectUpgrade(socket: Duplex, err: unknown): void {
  const e = err instanceof StreamfnError ? err : new StreamfnError("INTERNAL", String(err));
  const body = JSON.stringify({ error: e.toRecord() });
  const headers = [
    `HTTP/1.1 ${e.status} ${statusText(e.status)}`,
    "Content-Type: application/json",
    `Content-Length: ${Buffer.byteLength(body)}`,
    "Connection: close",
  ];
  if (e.retryAfterMs !== undefined) headers.push(`Retry-After: ${Math.max(1, Math.ceil(e.retryAfterMs / 1000))}`);
  socket.end(`${headers.join("\r\n")}\r\n\r\n${body}`);
}

function statusText(status: number): string {
  return STATUS_CODES[status] ?? "Error";
}

/** `?resume=1` and/or `?after=<n>`: the producer takes over a live stream, outputs relayed after n. */
function resumeOf(req: IncomingMessage): { after: number } | undefined {
  const q = new URL(req.url ?? "/", "http://x").searchParams;
  const after = q.get("after");
  if (q.get("resume") !== "1" && q.get("resume") !== "true" && after === null) return undefined;
  const n = after === null ? 0 : Number(after);
  if (!Number.isSafeInteger(n) || n < 0) throw new StreamfnError("INVALID_REQUEST", `after must be a whole number >= 0, got ${JSON.stringify(after)}`);
  return { after: n };
}
