import type { ErrorRecord } from "../api/errors.js";
import type { EndReason, ResolvedOptions } from "../api/types.js";
import type { EndedStream } from "./ended-streams.js";
import type { StreamLogSnapshot } from "./stream-log.js";
import type { EndRecord, OutputSink, ProducerFlow, RetainedOutput, StreamState } from "./stream.js";

export type { EndedStream } from "./ended-streams.js";
export type { StreamLogSnapshot } from "./stream-log.js";
export type { CloseReason, EndRecord, OutputSink, ProducerFlow, RetainedOutput, StreamState, StreamStatus } from "./stream.js";

/**
 * The contract between the gateway (and the control, logs and status routes) and the stream
 * table. Everything outside src/router talks to streams through it and nothing else.
 *
 * Two implementations:
 * - embedded mode: `Router` (src/router/router.ts), in-process; every method answers
 *   synchronously and a `StreamHandle` is the router's own live record, read without copies;
 * - cluster mode: the table lives behind the network; a handle is the gateway's mirror of
 *   the stream's record, kept current by the table's messages.
 *
 * Errors are `StreamfnError`s with the stable codes of src/api/errors.ts; the codes each
 * method may throw are part of its contract (the gateway maps them to HTTP statuses, the
 * WebSocket protocol to error records). Retry hints travel in `retryAfterMs`.
 */
export interface StreamTable {
  /**
   * Opens a new stream of the function's current version and returns its handle. With no
   * `streamId` the table names it (a UUID). `sink`, when given, receives every output from
   * the first one on. The stream takes an instance slot now or waits for one (`state`
   * "waiting"); a stream whose instance fails to start may already be "done" on return.
   *
   * May answer asynchronously (cluster mode asks the owner of the stream id); callers await
   * it once per stream, never per event. Every refusal happens here, before the caller has
   * committed to a protocol, so the WebSocket upgrade can answer it as a plain HTTP status:
   * - SHUTTING_DOWN (503): the table takes no new streams;
   * - FUNCTION_NOT_FOUND (404): no current version of `functionName`;
   * - INVALID_STREAM_ID (400): `streamId` is not 1-128 of A-Z a-z 0-9 . _ : ~ -;
   * - STREAM_BUSY (409): a live stream has that id (and `resume` was not asked for, or the
   *   table cannot reattach: only cluster mode does);
   * - STREAM_ENDED (409): a stream with that id ended within the retention window;
   * - CAPACITY_EXCEEDED (503, `retryAfterMs`): no slot now and the wait queue is full.
   */
  open(functionName: string, streamId: string | undefined, sink?: OutputSink, resume?: { after: number }): StreamHandle | Promise<StreamHandle>;

  /**
   * Cluster mode: follows the outputs of a stream opened elsewhere (another gateway) from its
   * output log, after output `after`, into `sink` (outputs, then its end). Resolves to a stop
   * function, or undefined when no stream with that id is known (live or within retention).
   */
  followLog?(functionName: string, streamId: string, after: number, sink: OutputSink): Promise<(() => void) | undefined>;

  /** The live stream (function, streamId), or undefined. Never throws. */
  get(functionName: string, streamId: string): StreamHandle | undefined;

  /** The remembered end of (function, streamId) if it ended within the retention window. Never throws. */
  ended(functionName: string, streamId: string): EndedStream | undefined;

  /** The remembered ended streams of one function, newest first. Never throws. */
  endedOf(functionName: string): { streamId: string; ended: EndedStream }[];

  /** The live stream, or `open(functionName, streamId)` (same errors) when there is none. */
  openOrGet(functionName: string, streamId: string): StreamHandle | Promise<StreamHandle>;

  /**
   * Calls `cb` once, with the handle, when (function, streamId) opens: for a subscriber that
   * connects before the producer's first event. `cb` runs before the stream's first output
   * can reach any sink, so a sink added inside it misses nothing. Returns a cancel function,
   * or undefined when too many subscribers already wait (the caller answers CAPACITY_EXCEEDED).
   */
  awaitOpen(functionName: string, streamId: string, cb: (stream: StreamHandle) => void): (() => void) | undefined;

  /**
   * Accepts one event: the per-event hot path, synchronous in every implementation (cluster
   * mode publishes without waiting; flow control comes back through the producer's
   * `ProducerFlow`). `data` is a parsed JSON value, or an ArrayBuffer when `binary` (which
   * the table may transfer, detaching it). `bytes` is the event's size on the wire.
   * `envelopeText`, when known, is the envelope's JSON text, which the table may forward in
   * place of `data` (and `data` may then be undefined: see StreamHandle.forwardsEnvelopeText).
   * A `seq` at or below `lastSeq` is a retry: acknowledged, not delivered.
   * Throws:
   * - STREAM_INPUT_ENDED (409): the input already ended; STREAM_ENDED (409) once the stream is done;
   * - EVENT_TOO_LARGE (413): `bytes` exceeds the stream's maxEventBytes;
   * - INBOX_FULL (429, `retryAfterMs`): the producer ignored pause and the inbox reached its hard cap.
   */
  push(stream: StreamHandle, data: unknown, seq: number | undefined, binary: boolean, bytes: number, envelopeText?: string): PushResult;

  /**
   * Accepts a batch all or nothing: the whole batch is judged (retries against `lastSeq`,
   * input still open, room in the inbox for every new event) before any of it is taken.
   * `end`: the input ends after the batch. A batch whose every event is a retry is
   * acknowledged (all duplicates) even after the input ended.
   * Throws, having taken nothing:
   * - STREAM_INPUT_ENDED (409): the input ended (or the stream is done) and the batch has new events;
   * - EVENT_TOO_LARGE (413): an event exceeds maxEventBytes;
   * - INBOX_FULL (429, `retryAfterMs`): the inbox has no room for the batch's new events.
   * The one partial outcome is a limit reached inside the batch (maxEvents ends the input):
   * the result then carries `rejected` (events not taken, from the first refused one) and `error`.
   */
  pushBatch(stream: StreamHandle, events: readonly BatchEvent[], end: boolean): BatchResult;

  /** No more events: the handler's iterator completes after those already accepted. Idempotent; never throws. */
  endInput(stream: StreamHandle, reason: EndReason): void;

  /** The producer's flow control: `pause()` while the stream's inbox is full, `resume()` when it has room again. */
  attachProducer(stream: StreamHandle, flow: ProducerFlow): void;

  /**
   * Adds an output sink: it gets every output from the next one on, then the end record.
   * A sink that reports `backedUp()` holds the handler until `onceWritable` fires (bounded
   * by the sink itself). Callers bound the number of sinks per stream (see `subscribers`).
   */
  addSink(stream: StreamHandle, sink: OutputSink): void;

  /** Removes a sink; a handler held for it alone goes on. Never throws. */
  removeSink(stream: StreamHandle, sink: OutputSink): void;

  /**
   * Ends a live stream with `error` (an operator cancelled it, a producer broke the
   * protocol): its handler is stopped, sinks get a failed end record and the id is
   * remembered as ended. No-op for a stream already done. Once it returns, `stream.end` is set.
   */
  fail(stream: StreamHandle, error: ErrorRecord): void;

  /**
   * Withdraws a stream whose producer never got connected (its handshake failed after
   * `open`): unlike `fail`, the id is not remembered as ended, so the producer's retry opens
   * it afresh. No-op for a stream already done.
   */
  abandon(stream: StreamHandle): void;

  /** Every live stream, for status pages and listings (a snapshot is fine; order unspecified). */
  live(): Iterable<StreamHandle>;

  /** How many streams are live. */
  readonly liveCount: number;

  /** Whether the function has a current version that takes new streams. */
  hasFunction(functionName: string): boolean;

  /**
   * The options (limits) new streams of the function's current version get, or undefined
   * when it has none: what the gateway checks a request against before a stream exists.
   */
  limits(functionName: string): Readonly<ResolvedOptions> | undefined;

  /**
   * What StreamHandle.forwardsEnvelopeText would be for a stream of the function opened now:
   * for input judged before its stream exists (an HTTP batch that opens it). The stream's own
   * answer decides once it exists (a redeploy in between may change it).
   */
  forwardsEnvelopeText(functionName: string): boolean;
}

/**
 * What the gateway may read about a live stream. Read-only: only the table changes a stream.
 * Fields read on the per-event path (`state`, `inputEnd`, `options`) are plain properties.
 */
export interface StreamHandle {
  readonly functionName: string;
  readonly streamId: string;
  /** The version it runs on (a stream still waiting for a slot may move to a newer one). */
  readonly version: string;
  readonly state: StreamState;
  /** The highest seq taken (or the arrival number of the last event without one). */
  readonly lastSeq: number;
  /** Events accepted. */
  readonly events: number;
  /** Retries acknowledged and dropped. */
  readonly duplicates: number;
  /** Outputs the handler produced. */
  readonly outputs: number;
  /** Why the input ended, once it did. */
  readonly inputEnd: EndReason | undefined;
  /** The end record, once `state` is "done". */
  readonly end: EndRecord | undefined;
  /** Epoch ms. */
  readonly openedAt: number;
  /** Epoch ms when it got its slot. */
  readonly boundAt: number | undefined;
  /** The last outputs kept for subscribers that resume from an output number, oldest first. */
  readonly retained: readonly RetainedOutput[];
  /** The version's options: the limits (maxEventBytes, inboxLimit, stallTimeoutMs…) the gateway applies. */
  readonly options: Readonly<ResolvedOptions>;
  /**
   * true: `push` given an `envelopeText` forwards the text, parsed only where the handler runs,
   * and never reads `data`; a gateway that has judged the envelope valid without parsing it
   * may then pass `data` as undefined. false (the inline tier): `push` needs the parsed value.
   */
  readonly forwardsEnvelopeText: boolean;
  /** Events accepted that the instance has not been sent yet. */
  readonly queued: number;
  /** Events sent to the instance that its handler has not taken yet. */
  readonly inflight: number;
  /** Outputs written to a backed-up sink and not yet credited back to the handler (it waits while > 0). */
  readonly heldOutputs: number;
  /** Output sinks attached (the producer's connection and subscribers). */
  readonly subscribers: number;
  /** The instance it is bound to, once bound. */
  readonly instanceId: number | undefined;
  /** Once bound: whether it waited for a new instance (a cold start). Tables that cannot tell leave it out. */
  readonly cold?: boolean;
  /** With `cold`: that instance's start-to-ready time in ms. */
  readonly coldStartMs?: number;
  /** Epoch ms of the last accepted event (the open time before the first). */
  readonly lastEventTime: number;
  /** The handler's kept `ctx.log` lines. */
  logSnapshot(): StreamLogSnapshot;
}

export interface PushResult {
  /** false: a retry (seq at or below the last seen); acknowledged and dropped. */
  accepted: boolean;
  seq: number;
}

/** One event of `pushBatch`, as `push` takes it. */
export interface BatchEvent {
  data: unknown;
  seq: number | undefined;
  binary: boolean;
  bytes: number;
  /** The envelope's JSON text, when the gateway has it: forwarded in place of `data`, as `push`'s `envelopeText`. */
  text?: string;
}

export interface BatchResult {
  accepted: number;
  duplicates: number;
  lastSeq: number;
  /** The batch's `end` was applied (not set for a batch of retries acknowledged after the input ended). */
  ended?: true;
  /** Set when a limit reached inside the batch refused its tail: the events not taken. */
  rejected?: number;
  error?: ErrorRecord;
}
