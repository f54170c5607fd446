import type { StreamSource } from "./sources.js";

/** Why a stream's input ended. `disconnect` is a producer connection lost without an end. */
export type EndReason = "end" | "idle" | "max-duration" | "max-events" | "disconnect" | "shutdown";

/**
 * `thread`: a worker thread with its own V8 heap (fast to start, binary events moved without
 * copying). `process`: a child process under Node's permission model (no file writes, no
 * child processes or threads, reads only the runtime and the function's directory), for code
 * trusted less than the platform. `inline`: on the server's own thread, with no isolation at all
 * (no heap limit, no recovery from a blocked loop, the server's environment), for code trusted as
 * much as the server: it saves the thread hop each event and output pays otherwise.
 */
export type SandboxKind = "thread" | "process" | "inline";

/** Per-function settings. Every one can also be set or overridden by server configuration. */
export interface StreamFunctionOptions {
  /** The stream's input ends after this long without an event. Default 10 000. */
  idleTimeoutMs?: number;
  /** The stream's input ends this long after the stream opened. Default 300 000. */
  maxDurationMs?: number;
  /** The stream's input ends after this many events. Default 100 000. */
  maxEvents?: number;
  /** Largest event payload accepted, in bytes. Default 1 MiB. */
  maxEventBytes?: number;
  /** Outputs a stream may produce; one more fails the stream with TOO_MANY_OUTPUTS. Default 1 000 000. */
  maxOutputs?: number;
  /** Largest output in bytes (its JSON text, or a binary output's length); a bigger one fails the stream with OUTPUT_TOO_LARGE. Default 16 MiB. */
  maxOutputBytes?: number;
  /** Time the handler has, after its input ended, to finish and yield final outputs. Default 5 000. */
  epilogueMs?: number;
  /** A handler that does not pull the next waiting event for this long fails its stream. Default 30 000. */
  stallTimeoutMs?: number;
  /** Events buffered per stream before the producer is slowed (WebSocket) or refused (429). Default 256. */
  inboxLimit?: number;
  /** Stream slots per instance. Default 64: few instances mean few thread wake-ups; CPU-bound functions still spread (see pool placement). */
  concurrency?: number;
  /** Instances kept warm even with no streams. Default 0: scale to zero. */
  minInstances?: number;
  /** Upper bound on instances of this function. Default 4. */
  maxInstances?: number;
  /** Streams that may wait for a slot when all instances are full. Default 1 000. */
  maxQueuedStreams?: number;
  /** An instance with no streams for this long is stopped. Default 30 000. */
  keepAliveMs?: number;
  /** V8 heap limit per instance, in MiB. Default 256. */
  memoryMb?: number;
  /** An instance whose event loop does not answer for this long is recycled. Default 10 000. */
  unresponsiveMs?: number;
  /** Sandbox kind for instances: `thread` (default), `process` or `inline` (see SandboxKind). */
  sandbox?: SandboxKind;
  /**
   * Cluster mode: whether a stream whose worker was lost may be run again from its first event
   * on another worker (outputs already delivered are dropped by number, so a handler's outputs
   * must depend only on its input). `false` fails such a stream with STREAM_NOT_REPLAYABLE.
   * Default true.
   */
  replay?: boolean;
}

export type ResolvedOptions = Required<StreamFunctionOptions>;

export interface EventMeta {
  /** The event's sequence number: the producer's `seq`, or its arrival position when none was given. */
  seq: number;
  /** When the platform received the event (ms since the epoch, sub-millisecond precision). */
  receivedAt: number;
}

export interface StreamLogger {
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
}

export interface StreamContext {
  readonly streamId: string;
  readonly functionName: string;
  /** Metadata of the event most recently handed out by the iterator. */
  readonly event: Readonly<EventMeta>;
  /** Set once the iterator has completed. */
  readonly endReason: EndReason | undefined;
  /** Fires when the platform gives up on the stream (stall, epilogue timeout, shutdown). */
  readonly signal: AbortSignal;
  readonly log: StreamLogger;
}

export type StreamHandler<In = unknown, Out = unknown> =
  | ((events: AsyncIterable<In>, ctx: StreamContext) => AsyncIterable<Out>)
  | ((events: AsyncIterable<In>, ctx: StreamContext) => Promise<Out | undefined> | Out | undefined);

export interface StreamFunctionDefinition<In = unknown, Out = unknown> extends StreamFunctionOptions {
  handler: StreamHandler<In, Out>;
  /**
   * Broker topics or subjects whose messages are this function's events (see docs/connectors.md).
   * The server's configuration (`sources` in its config file) replaces them per function.
   */
  sources?: StreamSource[];
}

export const kStreamFunction = Symbol.for("streamfn.function");

export interface StreamFunction<In = unknown, Out = unknown> {
  readonly [kStreamFunction]: true;
  readonly handler: StreamHandler<In, Out>;
  readonly options: StreamFunctionOptions;
  readonly sources: readonly StreamSource[];
}
