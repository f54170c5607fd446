import type { ServerResponse } from "node:http";
import { StreamfnError } from "../api/errors.js";
import type { RouterObserver } from "../router/router.js";
import type { StreamLogEntry } from "../router/stream-log.js";
import { streamKey } from "../router/stream.js";
import type { EndRecord, Stream } from "../router/stream.js";

/** Followers at once over the whole server (stream and function followers together). */
export const kMaxLogFollowers = 256;
/** Unsent bytes a follower may have before it is cut off: a slow reader is not buffered for. */
export const kMaxFollowerBacklog = 1024 * 1024;

/** A `log` record as a follower gets it; a function follower also learns the line's stream and version. */
export interface LogRecord extends StreamLogEntry {
  type: "log";
  streamId?: string;
  version?: string;
}

/** The last record of a stream follower: the stream's end record and its count of lines not kept. */
export type LogEndRecord = EndRecord & { dropped: number };

/** One follow response: NDJSON records written as they happen. */
export class LogFollower {
  #done = false;
  onGone: (() => void) | undefined;

  constructor(readonly res: ServerResponse) {
    res.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store", "x-content-type-options": "nosniff" });
    res.flushHeaders();
    res.on("close", () => this.#gone());
  }

  get done(): boolean {
    return this.#done;
  }

  write(record: object): void {
    if (this.#done) return;
    if (this.res.writableLength > kMaxFollowerBacklog) {
      // One last small record says why, then the response ends; the reader may reconnect.
      this.end({
        type: "error",
        code: "CAPACITY_EXCEEDED",
        message: `the reader fell more than ${kMaxFollowerBacklog} bytes behind and was cut off; reconnect to go on`,
      });
      return;
    }
    this.res.write(`${JSON.stringify(record)}\n`);
  }

  end(record?: object): void {
    if (this.#done) return;
    this.res.end(record ? `${JSON.stringify(record)}\n` : undefined);
    this.#gone();
  }

  #gone(): void {
    if (this.#done) return;
    this.#done = true;
    this.onGone?.();
  }
}

/**
 * Who follows which stream's or function's `ctx.log` lines. A router observer: each line is
 * fanned out as it reaches the router; a stream follower is ended with the stream's end record.
 * Bounded in followers (`kMaxLogFollowers`) and per follower (`kMaxFollowerBacklog`).
 */
export class LogFollowers implements RouterObserver {
  readonly #byStream = new Map<string, Set<LogFollower>>();
  readonly #byFunction = new Map<string, Set<LogFollower>>();
  #count = 0;

  constructor(readonly max = kMaxLogFollowers) {}

  get count(): number {
    return this.#count;
  }

  /** Throws CAPACITY_EXCEEDED when the server already has `max` followers. */
  checkRoom(): void {
    if (this.#count >= this.max) {
      throw new StreamfnError("CAPACITY_EXCEEDED", `the server already has ${this.max} log followers; retry later`, { retryAfterMs: 5_000 });
    }
  }

  followStream(functionName: string, streamId: string, follower: LogFollower): void {
    this.#add(this.#byStream, streamKey(functionName, streamId), follower);
  }

  followFunction(functionName: string, follower: LogFollower): void {
    this.#add(this.#byFunction, functionName, follower);
  }

  streamLog(stream: Stream, entry: StreamLogEntry): void {
    const forStream = this.#byStream.get(stream.key);
    if (forStream) {
      const record: LogRecord = { type: "log", ...entry };
      for (const f of forStream) f.write(record);
    }
    const forFunction = this.#byFunction.get(stream.functionName);
    if (forFunction) {
      const record: LogRecord = { type: "log", ...entry, streamId: stream.streamId, version: stream.version };
      for (const f of forFunction) f.write(record);
    }
  }

  streamClosed(stream: Stream, record: EndRecord): void {
    const forStream = this.#byStream.get(stream.key);
    if (!forStream) return;
    const end: LogEndRecord = { ...record, dropped: stream.logs.dropped };
    for (const f of [...forStream]) f.end(end);
  }

  /** Ends every follower with a SHUTTING_DOWN record (the server is closing). */
  close(): void {
    const record = { type: "error", code: "SHUTTING_DOWN", message: "the server is shutting down" };
    for (const map of [this.#byStream, this.#byFunction]) {
      for (const set of [...map.values()]) for (const f of [...set]) f.end(record);
    }
  }

  #add(map: Map<string, Set<LogFollower>>, key: string, follower: LogFollower): void {
    this.checkRoom();
    if (follower.done) return; // the reader left already
    let set = map.get(key);
    if (!set) map.set(key, (set = new Set()));
    set.add(follower);
    this.#count++;
    follower.onGone = () => {
      const s = map.get(key);
      if (!s?.delete(follower)) return;
      this.#count--;
      if (s.size === 0) map.delete(key);
    };
  }
}
