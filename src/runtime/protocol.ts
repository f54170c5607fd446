import type { StreamSource } from "../api/sources.js";
import type { ErrorRecord } from "../api/errors.js";
import type { EndReason, StreamFunctionOptions } from "../api/types.js";
import type { LogLevel } from "../router/stream-log.js";

// Messages between the router's side and a sandbox. Each postMessage carries an array of
// these (between threads encoded flat, see thread-wire.ts): both sides queue them and flush
// once per turn of the event loop, so a busy stream costs one thread message per batch, not
// one per event.

/** Router → sandbox. `s` is the router's numeric stream handle, unique per server. */
export type ToSandbox =
  | { k: "open"; s: number; id: string }
  /**
   * An event. `b` marks `d` as an ArrayBuffer (transferred) to hand over as a Uint8Array; `e`
   * marks `d` as the JSON text of the event's envelope, whose `data` is the payload.
   */
  | { k: "ev"; s: number; d: unknown; q: number; t: number; b?: 1; e?: 1 }
  | { k: "end"; s: number; r: EndReason }
  | { k: "kill"; s: number; e: ErrorRecord }
  /** Credits for outputs the router has delivered. */
  | { k: "ack"; s: number; n: number }
  | { k: "ping"; t: number }
  /** The inline sandbox is going away: every handler still running stops (a thread or process just ends). */
  | { k: "stop" };

/** Sandbox → router. */
export type FromSandbox =
  | { k: "ready"; options: StreamFunctionOptions; sources?: StreamSource[] }
  /**
   * An output: its JSON text, or a Uint8Array for a binary output. Serialized here, in the
   * sandbox, so the router's thread neither clones an object graph nor stringifies it.
   * `t` is the arrival stamp of the event the handler held when it yielded (0: it held none,
   * e.g. a summary after its input ended: no event's latency is measured from it).
   */
  | { k: "out"; s: number; d: string | Uint8Array; t: number }
  /** Events the handler has taken off its iterator. */
  | { k: "pull"; s: number; n: number }
  /**
   * A `ctx.log` line, already formatted and capped in the sandbox. `x`: lines of this stream
   * the sandbox dropped (rate limit) since its previous line.
   */
  | { k: "log"; s: number; l: LogLevel; m: string; t: number; x?: number }
  /** The handler finished. `x`: log lines dropped since the last one sent. */
  | { k: "done"; s: number; e?: ErrorRecord; x?: number }
  | { k: "pong"; t: number }
  /**
   * A child process's event-loop totals (performance.eventLoopUtilization(): idle and active
   * ms), last in a batch at most every 100 ms: its parent cannot read them as a thread's can.
   */
  | { k: "elu"; i: number; a: number }
  /** A child process is about to exit because of `m` (its module failed to load, an uncaught error). */
  | { k: "fatal"; m: string };

export interface SandboxInit {
  bundlePath: string;
  functionName: string;
  /** Thread sandboxes: shared memory for the outputs not posted yet (see OutputJournal). */
  journal?: SharedArrayBuffer;
  /** The URL to import the bundle from, when not the bundle's own (the inline tier retrying a failed load). */
  importUrl?: string;
}

/** Unacknowledged outputs a stream may have in flight before its handler is paused. */
export const kOutputWindow = 64;
