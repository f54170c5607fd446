import type { ErrorRecord } from "../api/errors.js";
import type { EndReason, ResolvedOptions } from "../api/types.js";
import type { EventOp, Instance } from "../instances/instance.js";
import type { FunctionPool, SlotRequest } from "../instances/pool.js";
import { StreamLogBuffer } from "./stream-log.js";
import type { StreamLogSnapshot } from "./stream-log.js";
import type { StreamHandle } from "./stream-table.js";

export type StreamState = "waiting" | "running" | "done";
export type StreamStatus = "completed" | "failed";
/** Why a stream closed: its input's end reason, `returned` when the handler finished first, or `error`. */
export type CloseReason = EndReason | "returned" | "error";

export interface EndRecord {
  type: "end";
  status: StreamStatus;
  reason: CloseReason;
  events: number;
  outputs: number;
  error?: ErrorRecord;
}

/**
 * Where a stream's outputs go: the producer's connection and any subscriber. `json` is the
 * output already serialized once for every sink; `bytes` is set instead for binary outputs.
 */
export interface OutputSink {
  output(n: number, json: string | undefined, bytes: Uint8Array | undefined): void;
  end(record: EndRecord): void;
  /**
   * Writes now whatever the sink holds back to coalesce writes (a socket corked for the turn).
   * The router calls it when the stream closes, before the bookkeeping of its end, so the
   * handler's last outputs do not wait for that.
   */
  flush?(): void;
  /** True while the sink's socket has too much unsent data: the stream's handler is then held. */
  backedUp?(): boolean;
  /** Calls `cb` once when a backed-up sink can take more. */
  onceWritable?(cb: () => void): void;
  /** The stream's producer reconnected elsewhere (cluster mode): this connection is cut off with `record`. */
  detach?(record: { code: string; message: string }): void;
}

/** The producer side's flow control: paused while the stream's inbox is full. */
export interface ProducerFlow {
  pause(): void;
  resume(): void;
}

export type RetainedOutput = { n: number; json: string; bytes?: undefined } | { n: number; bytes: Uint8Array; json?: undefined };

/** Every tier but inline parses the envelope's text where the handler runs. */
export function forwardsEnvelopeText(options: Readonly<ResolvedOptions>): boolean {
  return options.sandbox !== "inline";
}

/** The stream table's key of (function, streamId). */
export function streamKey(functionName: string, streamId: string): string {
  return `${functionName}\n${streamId}`;
}

/**
 * A live stream: the router's own mutable record of one (function, streamId). Private to
 * src/router: everything else reads it as a `StreamHandle`.
 */
export class Stream implements StreamHandle {
  state: StreamState = "waiting";
  instance: Instance | undefined;
  request: SlotRequest | undefined;
  /** Events accepted but not yet sent to the instance (bounded by inboxLimit and the hard cap). */
  readonly inbox: EventOp[] = [];
  inboxHead = 0;
  /** Events sent to the instance that its handler has not taken yet. */
  inflight = 0;
  lastSeq = 0;
  events = 0;
  duplicates = 0;
  outputs = 0;
  /** Outputs delivered to a backed-up sink and not yet credited back to the handler. */
  heldAcks = 0;
  /** When the current hold began (performance.now()), while heldAcks > 0. */
  heldSince = 0;
  readonly sinks = new Set<OutputSink>();
  producer: ProducerFlow | undefined;
  producerPaused = false;
  inputEnd: EndReason | undefined;
  endSent = false;
  cold = false;
  readonly openedAt = Date.now();
  boundAt: number | undefined;
  lastEventAt = performance.now();
  lastProgressAt = performance.now();
  idleTimer: NodeJS.Timeout | undefined;
  durationTimer: NodeJS.Timeout | undefined;
  stallTimer: NodeJS.Timeout | undefined;
  epilogueTimer: NodeJS.Timeout | undefined;
  /** When the handler's input end was delivered and nothing was left for it to take. */
  epilogueSince: number | undefined;
  end: EndRecord | undefined;
  /** The handler's last `ctx.log` lines. */
  readonly logs = new StreamLogBuffer();
  /** A failed handler's stack, for the server's log (records sent out never carry it). */
  errorStack: string | undefined;

  constructor(
    readonly sid: number,
    readonly key: string,
    readonly functionName: string,
    readonly streamId: string,
    /** The version's pool; a stream still waiting for a slot moves to a newer version when its own is replaced. */
    public pool: FunctionPool,
    readonly options: ResolvedOptions,
    readonly outputRetention: number,
    /** Bytes of retained outputs kept per stream (JSON text length or binary length). */
    readonly outputRetentionBytes = Infinity,
  ) {}

  get version(): string {
    return this.pool.version;
  }

  get queued(): number {
    return this.inbox.length - this.inboxHead;
  }

  get heldOutputs(): number {
    return this.heldAcks;
  }

  get subscribers(): number {
    return this.sinks.size;
  }

  get instanceId(): number | undefined {
    return this.instance?.id;
  }

  /** For a stream that waited for its instance to start: that instance's start-to-ready time. */
  get coldStartMs(): number | undefined {
    return this.cold ? this.instance?.coldStartMs : undefined;
  }

  get forwardsEnvelopeText(): boolean {
    return forwardsEnvelopeText(this.options);
  }

  get lastEventTime(): number {
    // lastEventAt is a monotonic stamp (the idle clock); shown as wall-clock time.
    return Date.now() - (performance.now() - this.lastEventAt);
  }

  logSnapshot(): StreamLogSnapshot {
    return this.logs.snapshot();
  }

  /** Events the handler has not taken yet, wherever they are. */
  get pending(): number {
    return this.queued + this.inflight;
  }

  /** Whether an HTTP producer may add `count` events now (it gets 429 otherwise). */
  canAccept(count: number): boolean {
    return this.inputEnd === undefined && this.queued + count <= this.options.inboxLimit;
  }

  /**
   * The last `outputRetention` outputs, so a subscriber that (re)connects can resume from an
   * output number. Kept while the stream lives and, after it ends, in its ended record.
   */
  retained: RetainedOutput[] = [];
  retainedBytes = 0;

  retain(n: number, json: string | undefined, bytes: Uint8Array | undefined): void {
    const cap = this.outputRetention;
    if (cap === 0) return;
    const size = bytes ? bytes.byteLength : json!.length;
    if (size > this.outputRetentionBytes) {
      // Too big to keep at all: keeping older ones would leave a gap a resuming subscriber can't see.
      this.retained.length = 0;
      this.retainedBytes = 0;
      return;
    }
    this.retained.push(bytes ? { n, bytes } : { n, json: json! });
    this.retainedBytes += size;
    while (this.retained.length > cap || this.retainedBytes > this.outputRetentionBytes) {
      const old = this.retained.shift()!;
      this.retainedBytes -= old.bytes ? old.bytes.byteLength : old.json.length;
    }
  }

  clearTimers(): void {
    for (const t of [this.idleTimer, this.durationTimer, this.stallTimer, this.epilogueTimer]) {
      if (t) clearTimeout(t);
    }
    this.idleTimer = this.durationTimer = this.stallTimer = this.epilogueTimer = undefined;
  }
}
