import type { ServerResponse } from "node:http";
import type { EndRecord, OutputSink } from "../router/stream-table.js";

/** Unsent bytes on a response above which the stream's handler is held (output backpressure). */
const kHighWater = 1024 * 1024;

/**
 * An OutputSink writing text to a streamed HTTP response. Everything written in one turn of
 * the event loop goes out as one `write` (one chunk, one syscall), however many outputs an
 * instance's batch carried.
 */
export abstract class ResponseSink implements OutputSink {
  readonly res: ServerResponse;
  #pending = "";
  #scheduled = false;
  #closed = false;

  constructor(res: ServerResponse) {
    this.res = res;
    res.once("close", () => {
      this.#closed = true;
      this.#pending = "";
    });
  }

  abstract output(n: number, json: string | undefined, bytes: Uint8Array | undefined): void;
  abstract end(record: EndRecord): void;

  get closed(): boolean {
    return this.#closed || this.res.writableEnded;
  }

  /** Queues text for this turn's write. */
  write(text: string): void {
    if (this.closed) return;
    this.#pending += text;
    if (!this.#scheduled) {
      this.#scheduled = true;
      process.nextTick(this.#flush);
    }
  }

  /** Writes what is queued plus `text`, and ends the response. */
  finish(text: string): void {
    if (this.closed) return;
    const out = this.#pending + text;
    this.#pending = "";
    this.res.end(out);
  }

  backedUp(): boolean {
    return this.#pending.length + this.res.writableLength > kHighWater;
  }

  onceWritable(cb: () => void): void {
    const socket = this.res.socket;
    if (!socket || this.#closed) {
      queueMicrotask(cb);
      return;
    }
    let done = false;
    const once = (): void => {
      if (done) return;
      done = true;
      socket.off("drain", once);
      socket.off("close", once);
      cb();
    };
    socket.on("drain", once);
    socket.on("close", once);
  }

  readonly #flush = (): void => {
    this.#scheduled = false;
    if (this.#pending === "" || this.closed) return;
    const out = this.#pending;
    this.#pending = "";
    this.res.write(out);
  };
}
