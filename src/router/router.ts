import { randomUUID } from "node:crypto";
import { StreamfnError } from "../api/errors.js";
import type { ErrorCode, ErrorRecord } from "../api/errors.js";
import type { EndReason, ResolvedOptions } from "../api/types.js";
import type { EventOp, Instance, SlotTenant } from "../instances/instance.js";
import type { FunctionPool } from "../instances/pool.js";
import { preciseNow } from "../runtime/clock.js";
import { EndedStreams } from "./ended-streams.js";
import type { EndedStream } from "./ended-streams.js";
import { forwardsEnvelopeText, Stream, streamKey as keyOf } from "./stream.js";
import type { StreamLogEntry } from "./stream-log.js";
import type { CloseReason, EndRecord, OutputSink, ProducerFlow } from "./stream.js";
import type { BatchEvent, BatchResult, PushResult, StreamTable } from "./stream-table.js";

export type { PushResult } from "./stream-table.js";

/** Where the router finds the version that new streams of a function should run on. */
export interface FunctionCatalog {
  current(functionName: string): FunctionPool | undefined;
}

export interface RouterObserver {
  streamOpened?(stream: Stream): void;
  streamBound?(stream: Stream, waitedMs: number): void;
  streamClosed?(stream: Stream, record: EndRecord): void;
  eventsIn?(stream: Stream, count: number): void;
  /** `latencyMs`: from the arrival of the event the handler held to this output leaving the router. */
  outputOut?(stream: Stream, latencyMs: number | undefined): void;
  /** A stream could not open: unknown function, busy or ended id, no capacity… */
  openRefused?(functionName: string, code: ErrorCode): void;
  /** A line the stream's handler logged with `ctx.log`. */
  streamLog?(stream: Stream, entry: StreamLogEntry): void;
}

export interface RouterOptions {
  /** How long an ended stream's id is remembered, so late events get STREAM_ENDED. Default 10 min. */
  endedRetentionMs?: number;
  /** At most this many ended streams are remembered. Default 100 000. */
  endedRetentionMax?: number;
  /** Outputs kept per stream for subscribers resuming from an output number. Default 128; 0 keeps none. */
  outputRetention?: number;
  /** Bytes of outputs kept per stream (JSON text length or binary length). Default 4 MiB. */
  outputRetentionBytes?: number;
  /** Outputs kept across all ended streams, for subscribers that come late. Default 100 000. */
  endedOutputsMax?: number;
  /** Bytes of outputs kept across all ended streams. Default 64 MiB. */
  endedOutputBytesMax?: number;
  /** `ctx.log` lines kept across all ended streams. Default 100 000. */
  endedLogLinesMax?: number;
}

const kStreamIdPattern = /^[A-Za-z0-9._:~-]{1,128}$/;
/** Subscribers that may wait for streams not yet open, over all streams. */
const kMaxOpenWaiters = 10_000;
/** Events in flight to an instance per stream; more wait in the stream's inbox. */
const kInstanceWindow = 64;
/** A producer that ignores pause (frames already read off its socket) may overshoot this much. */
const kHardInboxFactor = 4;
/** Suggested wait for a producer whose batch found the stream's inbox full. */
const kBatchRetryMs = 1000;

/**
 * The stream table of embedded mode (see StreamTable for the contract). Binds each
 * (function, streamId) to one instance slot, keeps its bounded inbox, enforces sequence,
 * ends, limits and watchdogs, and fans its outputs out in order.
 *
 * Methods take the router's own `Stream` where the contract says `StreamHandle`: every
 * handle this table gives out is one of its Streams, so no lookup or copy is needed.
 */
export class Router implements StreamTable {
  readonly #streams = new Map<string, Stream>();
  readonly #ended: EndedStreams;
  readonly #catalog: FunctionCatalog;
  readonly #observer: RouterObserver;
  readonly #outputRetention: number;
  readonly #outputRetentionBytes: number;
  #nextSid = 1;
  readonly #openWaiters = new Map<string, Set<(stream: Stream) => void>>();
  #openWaiterCount = 0;
  #closing = false;

  constructor(catalog: FunctionCatalog, observer: RouterObserver = {}, options: RouterOptions = {}) {
    this.#catalog = catalog;
    this.#observer = observer;
    this.#outputRetention = options.outputRetention ?? 128;
    this.#outputRetentionBytes = options.outputRetentionBytes ?? 4 * 1024 * 1024;
    this.#ended = new EndedStreams(options.endedRetentionMs ?? 600_000, options.endedRetentionMax ?? 100_000, {
      maxOutputs: options.endedOutputsMax,
      maxOutputBytes: options.endedOutputBytesMax,
      maxLogLines: options.endedLogLinesMax,
    });
  }

  get liveCount(): number {
    return this.#streams.size;
  }

  *live(): IterableIterator<Stream> {
    yield* this.#streams.values();
  }

  hasFunction(functionName: string): boolean {
    return this.#catalog.current(functionName) !== undefined;
  }

  limits(functionName: string): Readonly<ResolvedOptions> | undefined {
    return this.#catalog.current(functionName)?.options;
  }

  forwardsEnvelopeText(functionName: string): boolean {
    const options = this.limits(functionName);
    return options !== undefined && forwardsEnvelopeText(options);
  }

  get(functionName: string, streamId: string): Stream | undefined {
    return this.#streams.get(keyOf(functionName, streamId));
  }

  ended(functionName: string, streamId: string): EndedStream | undefined {
    return this.#ended.get(keyOf(functionName, streamId));
  }

  /** The remembered ended streams of one function, newest first, with their ids. */
  endedOf(functionName: string): { streamId: string; ended: EndedStream }[] {
    const prefix = keyOf(functionName, "");
    return this.#ended.newestFirst(prefix).map(([key, ended]) => ({ streamId: key.slice(prefix.length), ended }));
  }

  /**
   * Opens a new stream (or throws: unknown function, ended id, busy id, capacity). With no
   * `streamId` the platform names it. The stream takes a slot now, or waits for one.
   */
  open(functionName: string, streamId: string | undefined, sink?: OutputSink): Stream {
    try {
      return this.#open(functionName, streamId, sink);
    } catch (err) {
      if (err instanceof StreamfnError) this.#observer.openRefused?.(functionName, err.code);
      throw err;
    }
  }

  #open(functionName: string, streamId: string | undefined, sink?: OutputSink): Stream {
    if (this.#closing) throw new StreamfnError("SHUTTING_DOWN", "the server is shutting down");
    const pool = this.#catalog.current(functionName);
    if (!pool) throw new StreamfnError("FUNCTION_NOT_FOUND", `no function named "${functionName}"`);
    const id = streamId ?? randomUUID();
    if (!kStreamIdPattern.test(id)) {
      throw new StreamfnError(
        "INVALID_STREAM_ID",
        `stream id ${JSON.stringify(id.slice(0, 140))} is not allowed: use 1-128 characters of A-Z a-z 0-9 . _ : ~ -`,
      );
    }
    const key = keyOf(functionName, id);
    if (this.#streams.has(key)) {
      throw new StreamfnError("STREAM_BUSY", `stream "${id}" of ${functionName} is already open`);
    }
    const ended = this.#ended.get(key);
    if (ended) throw endedError(functionName, id, ended);

    const stream = new Stream(
      this.#nextSid++,
      key,
      functionName,
      id,
      pool,
      pool.options,
      this.#outputRetention,
      this.#outputRetentionBytes,
    );
    if (sink) stream.sinks.add(sink);
    const tenant: SlotTenant = {
      sid: stream.sid,
      streamId: id,
      onPull: (n) => this.#onPull(stream, n),
      onOutput: (data, eventAt) => this.#onOutput(stream, data, eventAt),
      onUnsent: (n, data, eventAt) => {
        if (n > stream.outputs) this.#onOutput(stream, data, eventAt);
      },
      onLog: (entry, dropped) => this.#onLog(stream, entry, dropped),
      onDone: (error, logsDropped) => {
        if (logsDropped) stream.logs.dropped += logsDropped;
        this.#close(stream, error);
      },
    };
    stream.request = {
      tenant,
      bind: (instance, cold) => this.#bind(stream, instance, cold),
      reject: (error) => this.#close(stream, error.toRecord()),
      replaced: () => this.#moveToCurrent(stream),
    };
    pool.acquire(stream.request); // throws CAPACITY_EXCEEDED before the stream exists anywhere
    if (stream.state === "done") throw new StreamfnError(stream.end!.error!.code, stream.end!.error!.message);
    this.#streams.set(key, stream);
    this.#armIdle(stream);
    stream.durationTimer = setTimeout(() => this.endInput(stream, "max-duration"), stream.options.maxDurationMs);
    stream.durationTimer.unref();
    this.#observer.streamOpened?.(stream);
    // A slot taken at once was bound inside acquire(), before the stream was listed: report
    // the bind now, so observers always see opened → bound → closed.
    if (stream.state === "running") this.#observer.streamBound?.(stream, stream.boundAt! - stream.openedAt);
    const waiters = this.#openWaiters.get(key);
    if (waiters) {
      this.#openWaiters.delete(key);
      this.#openWaiterCount -= waiters.size;
      // Called before any output can exist (outputs arrive from the instance, later).
      for (const cb of waiters) cb(stream);
    }
    return stream;
  }

  /**
   * Calls `cb` when (function, streamId) opens: for a subscriber that connects before the
   * producer's first event. Returns a cancel function, or undefined when too many subscribers
   * already wait (the bound keeps waiting subscribers from growing without limit).
   */
  awaitOpen(functionName: string, streamId: string, cb: (stream: Stream) => void): (() => void) | undefined {
    if (this.#openWaiterCount >= kMaxOpenWaiters) return undefined;
    const key = keyOf(functionName, streamId);
    let set = this.#openWaiters.get(key);
    if (!set) this.#openWaiters.set(key, (set = new Set()));
    set.add(cb);
    this.#openWaiterCount++;
    return () => {
      const s = this.#openWaiters.get(key);
      if (!s?.delete(cb)) return;
      this.#openWaiterCount--;
      if (s.size === 0) this.#openWaiters.delete(key);
    };
  }

  /** Opens the stream or returns the live one: for producers that post events one request at a time. */
  openOrGet(functionName: string, streamId: string): Stream {
    return this.get(functionName, streamId) ?? this.open(functionName, streamId);
  }

  /**
   * Accepts one event. `data` is a parsed JSON value, or an ArrayBuffer when `binary` (moved
   * to the instance, never copied). Throws for a stream whose input ended, an oversized event,
   * a bad seq, or an inbox past its hard cap.
   *
   * `envelopeText`, when the gateway has it, is the JSON text of the envelope `data` came from.
   * It goes to the instance in place of `data` and is parsed there: a string crosses threads
   * for a fraction of what cloning the parsed value costs, which takes work off this thread.
   * An inline instance shares this thread and takes `data` as it is, parsed once.
   */
  push(stream: Stream, data: unknown, seq: number | undefined, binary: boolean, bytes: number, envelopeText?: string): PushResult {
    if (stream.inputEnd !== undefined || stream.state === "done") {
      throw inputEndedError(stream);
    }
    if (bytes > stream.options.maxEventBytes) {
      throw new StreamfnError(
        "EVENT_TOO_LARGE",
        `event of ${bytes} bytes exceeds maxEventBytes (${stream.options.maxEventBytes}) of ${stream.functionName}`,
      );
    }
    if (seq !== undefined && seq <= stream.lastSeq) {
      stream.duplicates++;
      return { accepted: false, seq };
    }
    if (stream.queued >= stream.options.inboxLimit * kHardInboxFactor) {
      throw new StreamfnError(
        "INBOX_FULL",
        `stream "${stream.streamId}" has ${stream.queued} events waiting for its handler; slow down and resend`,
        { retryAfterMs: 100 },
      );
    }
    const q = seq ?? stream.lastSeq + 1;
    stream.lastSeq = q;
    stream.events++;
    stream.lastEventAt = performance.now();
    const op: EventOp = binary
      ? { k: "ev", s: stream.sid, d: data, q, t: preciseNow(), b: 1 }
      : envelopeText !== undefined && stream.forwardsEnvelopeText
        ? { k: "ev", s: stream.sid, d: envelopeText, q, t: preciseNow(), e: 1 }
        : { k: "ev", s: stream.sid, d: data, q, t: preciseNow() };
    stream.inbox.push(op);
    this.#observer.eventsIn?.(stream, 1);
    if (stream.state === "running") this.#deliver(stream);
    if (stream.queued >= stream.options.inboxLimit && stream.producer && !stream.producerPaused) {
      stream.producerPaused = true;
      stream.producer.pause();
    }
    if (stream.events >= stream.options.maxEvents) this.endInput(stream, "max-events");
    return { accepted: true, seq: q };
  }

  /** All or nothing (see StreamTable.pushBatch): judged whole before any event is taken. */
  pushBatch(stream: Stream, events: readonly BatchEvent[], end: boolean): BatchResult {
    const options = stream.options;
    let fresh = 0;
    let last = stream.lastSeq;
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!;
      if (e.bytes > options.maxEventBytes) {
        throw new StreamfnError(
          "EVENT_TOO_LARGE",
          `event ${i + 1} of the batch (${e.bytes} bytes) exceeds maxEventBytes (${options.maxEventBytes}) of ${stream.functionName}; ` +
            `none of these ${events.length} were taken`,
        );
      }
      // push()'s own dedup rule, applied ahead so the whole batch is judged before any of it is taken.
      if (e.seq !== undefined && e.seq <= last) continue;
      last = e.seq ?? last + 1;
      fresh++;
    }
    if (stream.inputEnd !== undefined || stream.state === "done") {
      // A retry of a batch that was taken before the input ended: acknowledge it again.
      if (fresh === 0) return { accepted: 0, duplicates: events.length, lastSeq: stream.lastSeq };
      throw new StreamfnError(
        "STREAM_INPUT_ENDED",
        `stream "${stream.streamId}" of ${stream.functionName} takes no more events: its input ended (${stream.inputEnd ?? "closed"})`,
      );
    }
    if (!stream.canAccept(fresh)) {
      throw new StreamfnError(
        "INBOX_FULL",
        `stream "${stream.streamId}" has ${stream.queued} events waiting for its handler (inboxLimit ${options.inboxLimit}); ` +
          `none of these ${events.length} were taken: resend them later`,
        { retryAfterMs: kBatchRetryMs },
      );
    }
    const result: BatchResult = { accepted: 0, duplicates: 0, lastSeq: 0 };
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!;
      try {
        if (this.push(stream, e.data, e.seq, e.binary, e.bytes, e.text).accepted) result.accepted++;
        else result.duplicates++;
      } catch (err) {
        // Only a limit reached inside this batch gets here (max-events ended the input).
        if (i === 0) throw err;
        result.rejected = events.length - i;
        result.error = err instanceof StreamfnError ? err.toRecord() : { code: "INTERNAL", message: String(err) };
        break;
      }
    }
    if (end) {
      this.endInput(stream, "end");
      result.ended = true;
    }
    result.lastSeq = stream.lastSeq;
    return result;
  }

  /** No more events: the handler's iterator completes after the ones already accepted. */
  endInput(stream: Stream, reason: EndReason): void {
    if (stream.inputEnd !== undefined || stream.state === "done") return;
    stream.inputEnd = reason;
    if (stream.idleTimer) clearTimeout(stream.idleTimer);
    if (stream.durationTimer) clearTimeout(stream.durationTimer);
    stream.idleTimer = stream.durationTimer = undefined;
    this.#resumeProducer(stream);
    if (stream.state === "running") this.#deliver(stream);
  }

  attachProducer(stream: Stream, flow: ProducerFlow): void {
    stream.producer = flow;
  }

  addSink(stream: Stream, sink: OutputSink): void {
    stream.sinks.add(sink);
  }

  removeSink(stream: Stream, sink: OutputSink): void {
    if (!stream.sinks.delete(sink)) return;
    // A departed backed-up sink must not hold the handler forever.
    this.#releaseHeldAcks(stream);
  }

  /** Fails a stream from outside (a producer broke the protocol, an operator cancelled it). */
  fail(stream: Stream, error: ErrorRecord): void {
    if (stream.state === "done") return;
    stream.instance?.kill(stream.sid, error);
    this.#close(stream, error);
  }

  /**
   * Withdraws a stream whose producer never got connected (its handshake failed after the
   * stream was opened). Unlike `fail`, its id is not remembered as ended: the producer's retry
   * with the same id opens it afresh instead of meeting STREAM_BUSY or STREAM_ENDED.
   */
  abandon(stream: Stream): void {
    if (stream.state === "done") return;
    const error: ErrorRecord = { code: "INTERNAL", message: "the producer's connection failed before the stream started" };
    stream.instance?.kill(stream.sid, error);
    this.#close(stream, error, false);
  }

  /**
   * Shuts down: refuses new streams (SHUTTING_DOWN), ends every live stream's input with
   * reason `shutdown` so its handler leaves its loop and runs what comes after (a summary
   * reaches the producer with its end record), waits up to `graceMs` for them to finish, then
   * fails the rest with SHUTDOWN_TIMEOUT.
   */
  async close(graceMs: number): Promise<void> {
    this.#closing = true;
    for (const stream of [...this.#streams.values()]) this.endInput(stream, "shutdown");
    const deadline = performance.now() + graceMs;
    while (this.#streams.size > 0 && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const stream of [...this.#streams.values()]) {
      this.fail(stream, {
        code: "SHUTDOWN_TIMEOUT",
        message: `the server shut down and the handler did not finish within the grace period (${graceMs} ms)`,
      });
    }
    this.#ended.clear();
  }

  get closing(): boolean {
    return this.#closing;
  }

  /** A waiting stream whose version was replaced queues on the new one instead of failing. */
  #moveToCurrent(stream: Stream): boolean {
    if (this.#closing || stream.state !== "waiting" || !stream.request) return false;
    const pool = this.#catalog.current(stream.functionName);
    if (!pool || pool === stream.pool || pool.draining) return false;
    const old = stream.pool;
    stream.pool = pool;
    try {
      pool.acquire(stream.request);
      return true;
    } catch {
      stream.pool = old; // refused there too: it fails as a stream of the version it waited for
      return false;
    }
  }

  #bind(stream: Stream, instance: Instance, cold: boolean): void {
    if (stream.state === "done") {
      instance.kill(stream.sid, { code: "SHUTTING_DOWN", message: "stream ended before it got a slot" });
      return;
    }
    stream.instance = instance;
    stream.state = "running";
    stream.cold = cold;
    stream.boundAt = Date.now();
    stream.request = undefined;
    stream.lastProgressAt = performance.now();
    if (this.#streams.get(stream.key) === stream) this.#observer.streamBound?.(stream, stream.boundAt - stream.openedAt);
    this.#deliver(stream);
  }

  /** Moves inbox events to the instance within the window, then the end once the inbox is empty. */
  #deliver(stream: Stream): void {
    const instance = stream.instance!;
    const wasPending = stream.inflight > 0;
    while (stream.inflight < kInstanceWindow && stream.inboxHead < stream.inbox.length) {
      const op = stream.inbox[stream.inboxHead]!;
      stream.inbox[stream.inboxHead++] = undefined as unknown as EventOp;
      stream.inflight++;
      instance.event(op);
    }
    if (stream.inboxHead === stream.inbox.length) {
      stream.inbox.length = 0;
      stream.inboxHead = 0;
    } else if (stream.inboxHead > 1024) {
      stream.inbox.splice(0, stream.inboxHead);
      stream.inboxHead = 0;
    }
    if (!wasPending && stream.inflight > 0) stream.lastProgressAt = performance.now();
    if (stream.inflight > 0) this.#armStall(stream);
    if (stream.inputEnd !== undefined && stream.queued === 0 && !stream.endSent) {
      stream.endSent = true;
      instance.endInput(stream.sid, stream.inputEnd);
    }
    if (stream.endSent && stream.pending === 0) this.#armEpilogue(stream);
  }

  #onPull(stream: Stream, n: number): void {
    stream.inflight -= n;
    stream.lastProgressAt = performance.now();
    if (stream.state !== "running") return;
    this.#deliver(stream);
    if (stream.producerPaused && stream.queued <= stream.options.inboxLimit >> 1) this.#resumeProducer(stream);
  }

  /** `data` is the output's JSON text (the sandbox serialized it) or a binary output's bytes. */
  #onOutput(stream: Stream, data: string | Uint8Array, eventAt: number): void {
    if (stream.state === "done") return;
    const json = typeof data === "string" ? data : undefined;
    const bytes = typeof data === "string" ? undefined : data;
    const refused = outputLimitError(stream, json, bytes);
    if (refused) {
      // Not delivered: the stream fails with the limit's code, visible to its producer and
      // subscribers in the end record; other streams (on this instance too) go on.
      this.fail(stream, refused);
      return;
    }
    const n = ++stream.outputs;
    stream.retain(n, json, bytes);
    let backedUp: OutputSink | undefined;
    for (const sink of stream.sinks) {
      sink.output(n, json, bytes);
      if (sink.backedUp?.()) backedUp = sink;
    }
    this.#observer.outputOut?.(stream, eventAt > 0 ? preciseNow() - eventAt : undefined);
    if (backedUp === undefined) {
      stream.instance?.ackOutput(stream.sid);
      return;
    }
    if (stream.heldAcks++ === 0) {
      stream.heldSince = performance.now();
      backedUp.onceWritable?.(() => this.#releaseHeldAcks(stream));
    }
  }

  #onLog(stream: Stream, entry: StreamLogEntry, dropped: number): void {
    if (stream.state === "done") return;
    stream.logs.dropped += dropped;
    stream.logs.add(entry);
    this.#observer.streamLog?.(stream, entry);
  }

  #releaseHeldAcks(stream: Stream): void {
    if (stream.heldAcks === 0) return;
    // With several sinks, one draining is not enough: wait for every one still backed up.
    if (stream.state !== "done") {
      for (const sink of stream.sinks) {
        if (sink.backedUp?.()) {
          sink.onceWritable?.(() => this.#releaseHeldAcks(stream));
          return;
        }
      }
    }
    const held = stream.heldAcks;
    stream.heldAcks = 0;
    // Time held back by a slow reader is not the handler's: the epilogue clock skips it.
    if (stream.epilogueSince !== undefined) {
      const now = performance.now();
      stream.epilogueSince += now - Math.max(stream.heldSince, stream.epilogueSince);
    }
    // The stall clock starts again from the moment the handler may go on.
    if (held > 0) stream.lastProgressAt = performance.now();
    for (let i = 0; i < held; i++) stream.instance?.ackOutput(stream.sid);
  }

  #close(stream: Stream, error: ErrorRecord | undefined, remember = true): void {
    if (stream.state === "done") return;
    // The handler's last outputs (often the one its producer waits for: a summary) are still
    // corked for this turn; the end's bookkeeping below and the end record can take a fraction
    // of a millisecond on a core that sat idle, and they need not go first.
    for (const sink of stream.sinks) sink.flush?.();
    const wasWaiting = stream.state === "waiting";
    stream.state = "done";
    stream.clearTimers();
    if (wasWaiting && stream.request) stream.pool.cancel(stream.request);
    const reason: CloseReason = error ? "error" : (stream.inputEnd ?? "returned");
    const record: EndRecord = {
      type: "end",
      status: error ? "failed" : "completed",
      reason,
      events: stream.events,
      outputs: stream.outputs,
    };
    if (error) {
      // The stack stays here, for the server's log; what goes out is code, message and name.
      const { stack, ...wire } = error;
      stream.errorStack = stack;
      record.error = wire;
    }
    stream.end = record;
    if (this.#streams.get(stream.key) === stream) this.#streams.delete(stream.key);
    if (remember) {
      this.#ended.add(stream.key, {
        ...record,
        endedAt: Date.now(),
        openedAt: stream.openedAt,
        version: stream.version,
        boundAt: stream.boundAt,
        instance: stream.instanceId,
        cold: stream.boundAt === undefined ? undefined : stream.cold,
        coldStartMs: stream.coldStartMs,
        lastEventAt: stream.events === 0 ? undefined : stream.lastEventTime,
        duplicates: stream.duplicates,
        lastSeq: stream.lastSeq,
        retained: stream.retained,
        logs: stream.logs.lines,
        logsDropped: stream.logs.dropped,
      });
    }
    stream.inbox.length = 0;
    stream.inboxHead = 0;
    this.#resumeProducer(stream);
    for (const sink of stream.sinks) sink.end(record);
    stream.sinks.clear();
    this.#observer.streamClosed?.(stream, record);
  }

  #resumeProducer(stream: Stream): void {
    if (!stream.producerPaused) return;
    stream.producerPaused = false;
    stream.lastEventAt = performance.now();
    stream.producer?.resume();
  }

  // Timers are lazy: events only stamp the stream; a timer that fires early re-arms for the
  // remainder. That keeps timer work off the per-event path.

  #armIdle(stream: Stream): void {
    const wait = stream.options.idleTimeoutMs - (performance.now() - stream.lastEventAt);
    stream.idleTimer = setTimeout(() => {
      stream.idleTimer = undefined;
      if (stream.inputEnd !== undefined || stream.state === "done") return;
      // A producer we paused has events it may not send: it is held back, not idle. Ending its
      // input now would refuse everything it still has. The idle clock restarts on resume.
      if (stream.producerPaused) stream.lastEventAt = performance.now();
      if (performance.now() - stream.lastEventAt >= stream.options.idleTimeoutMs - 1) this.endInput(stream, "idle");
      else this.#armIdle(stream);
    }, Math.max(1, wait));
    stream.idleTimer.unref();
  }

  /**
   * How long the handler has had since `since`. A stream bound to an instance that is still
   * starting has had none: its cold start is not the handler's time, whatever the watchdogs.
   */
  #handlerTime(stream: Stream, since: number): number {
    const readyAt = stream.instance?.readyAt;
    if (readyAt === undefined) return 0;
    return performance.now() - Math.max(since, readyAt);
  }

  #armStall(stream: Stream): void {
    if (stream.stallTimer) return;
    const wait = stream.options.stallTimeoutMs - this.#handlerTime(stream, stream.lastProgressAt);
    stream.stallTimer = setTimeout(() => {
      stream.stallTimer = undefined;
      if (stream.state !== "running" || stream.inflight === 0) return;
      // Output credits held for a backed-up consumer keep the handler waiting on purpose: a
      // slow reader slows the handler; that is backpressure, not a stalled handler.
      if (stream.heldAcks > 0) stream.lastProgressAt = performance.now();
      if (this.#handlerTime(stream, stream.lastProgressAt) >= stream.options.stallTimeoutMs - 1) {
        this.fail(stream, {
          code: "HANDLER_STALLED",
          message: `the handler did not take a waiting event for ${stream.options.stallTimeoutMs} ms (stallTimeoutMs)`,
        });
      } else {
        this.#armStall(stream);
      }
    }, Math.max(1, wait));
    stream.stallTimer.unref();
  }

  #armEpilogue(stream: Stream): void {
    if (stream.epilogueTimer || stream.state !== "running") return;
    stream.epilogueSince ??= performance.now();
    const wait = stream.options.epilogueMs - this.#handlerTime(stream, stream.epilogueSince);
    stream.epilogueTimer = setTimeout(() => {
      stream.epilogueTimer = undefined;
      if (stream.state !== "running") return;
      // As with the stall watchdog: a handler held back by a slow reader of its final outputs
      // is waiting on the consumer, not overrunning. (A consumer that vanished is cut off by
      // the connection's keep-alive, which releases the hold.)
      if (stream.heldAcks > 0) stream.epilogueSince = performance.now();
      if (this.#handlerTime(stream, stream.epilogueSince!) >= stream.options.epilogueMs - 1) {
        this.fail(stream, {
          code: "EPILOGUE_TIMEOUT",
          message: `the handler did not finish within ${stream.options.epilogueMs} ms (epilogueMs) after its input ended`,
        });
      } else {
        this.#armEpilogue(stream);
      }
    }, Math.max(1, wait));
    stream.epilogueTimer.unref();
  }
}

function endedError(functionName: string, streamId: string, ended: EndedStream): StreamfnError {
  return new StreamfnError(
    "STREAM_ENDED",
    `stream "${streamId}" of ${functionName} already ended (${ended.status}, reason ${ended.reason}) at ` +
      `${new Date(ended.endedAt).toISOString()}; start a new stream with another id`,
  );
}

function inputEndedError(stream: Stream): StreamfnError {
  if (stream.state === "done" && stream.end) {
    return endedError(stream.functionName, stream.streamId, { ...stream.end, endedAt: Date.now() });
  }
  return new StreamfnError(
    "STREAM_INPUT_ENDED",
    `stream "${stream.streamId}" of ${stream.functionName} takes no more events: its input ended (${stream.inputEnd})`,
  );
}

/** The error for an output over the stream's maxOutputs or maxOutputBytes, or undefined. */
function outputLimitError(stream: Stream, json: string | undefined, bytes: Uint8Array | undefined): ErrorRecord | undefined {
  const o = stream.options;
  if (stream.outputs >= o.maxOutputs) {
    return { code: "TOO_MANY_OUTPUTS", message: `the handler produced more than ${o.maxOutputs} outputs (maxOutputs of ${stream.functionName})` };
  }
  // UTF-8 takes 1-3 bytes per UTF-16 unit: text is counted exactly only when its length leaves it open.
  const over = bytes ? bytes.byteLength > o.maxOutputBytes : json!.length * 3 > o.maxOutputBytes && Buffer.byteLength(json!) > o.maxOutputBytes;
  if (over) {
    const size = bytes ? bytes.byteLength : Buffer.byteLength(json!);
    return {
      code: "OUTPUT_TOO_LARGE",
      message: `output ${stream.outputs + 1} has ${size} bytes, over the maxOutputBytes (${o.maxOutputBytes}) of ${stream.functionName}`,
    };
  }
  return undefined;
}
