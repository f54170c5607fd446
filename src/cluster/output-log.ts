import { headers as natsHeaders } from "@nats-io/transport-node";
import type { MsgHdrs } from "@nats-io/transport-node";
import { AckedPublisher, kExpectedLastSubjectSeqHeader, kMsgIdHeader } from "./acked-publish.js";
import { StreamfnError } from "../api/errors.js";
import type { Cluster } from "./ensure-cluster.js";
import { outputSubject } from "./names.js";
import { clusterError, isWrongLastSequence } from "./nats-errors.js";
import { lastOnSubject, readSubject } from "./direct-read.js";
import { OrderedFeed } from "./ordered-feed.js";
import type { FeedRecord } from "./ordered-feed.js";

/** Every record on an output subject carries the highest output number written so far. */
export const kOutputNumberHeader = "Sfn-N";
/** `output`, `end` (numbered, delivered to readers) or `fence` (not numbered, skipped by readers). */
export const kRecordKindHeader = "Sfn-Kind";

export type OutputKind = "output" | "end" | "fence";

/** Raised when the server refused an owner's write: a successor fenced the stream. */
export class FencedError extends StreamfnError {
  constructor(
    readonly fn: string,
    readonly streamId: string,
    cause: unknown,
  ) {
    super("STREAM_FENCED", `stream ${streamId} (${fn}) was taken over by another worker; this worker's writes for it are refused`, { cause });
  }
}

export interface OutputRecord {
  n: number;
  kind: "output" | "end";
  seq: number;
  data: Uint8Array;
  headers: MsgHdrs | undefined;
}

export interface LastOutput {
  seq: number;
  /** Highest output number written (0 before the first output). */
  n: number;
  kind: OutputKind;
  epoch: number | undefined;
}

function kindOf(h: MsgHdrs | undefined): OutputKind | undefined {
  const k = h?.get(kRecordKindHeader);
  return k === "output" || k === "end" || k === "fence" ? k : undefined;
}

function numberOf(h: MsgHdrs | undefined): number {
  const n = Number(h?.get(kOutputNumberHeader) ?? "0");
  return Number.isSafeInteger(n) && n >= 0 ? n : 0;
}

/** Numbered records (outputs and the end) only: fences are bookkeeping. */
function deliveredPositionOf(h: MsgHdrs | undefined): number | undefined {
  const kind = kindOf(h);
  return kind === "output" || kind === "end" ? numberOf(h) : undefined;
}

export interface WriterIdentity {
  worker: string;
  epoch: number;
}

/**
 * The outputs of all streams: one subject per stream in SFN_OUTPUTS. Only a stream's current
 * owner can append: each write expects the subject's last sequence to be the one this owner
 * wrote or read last, and a successor's fence record moves it on.
 */
export class OutputLog {
  readonly #cluster: Cluster;
  readonly #publisher: AckedPublisher;

  constructor(cluster: Cluster) {
    this.#cluster = cluster;
    this.#publisher = new AckedPublisher(cluster.nc);
  }

  subject(fn: string, streamId: string): string {
    return outputSubject(this.#cluster.settings.names, fn, streamId);
  }

  async last(fn: string, streamId: string): Promise<LastOutput | null> {
    const m = await lastOnSubject(this.#cluster.jsm, this.#cluster.settings.names.outputs, this.subject(fn, streamId));
    if (!m) return null;
    const kind = kindOf(m.header) ?? "output";
    let epoch: number | undefined;
    if (kind === "fence") epoch = (m.json() as { epoch?: number }).epoch;
    return { seq: m.seq, n: numberOf(m.header), kind, epoch };
  }

  /**
   * Becomes the stream's writer: reads the subject's last record, then appends a fence after
   * exactly it. From then on a write by any earlier owner (expecting an older last sequence)
   * is refused by the server. Fails with FencedError when yet another owner fenced first.
   */
  async fence(fn: string, streamId: string, who: WriterIdentity): Promise<OutputWriter> {
    const subject = this.subject(fn, streamId);
    // A write by the old owner may land between our read and our fence: read again and retry.
    for (let attempt = 0; attempt < 5; attempt++) {
      const last = await this.last(fn, streamId);
      const lastSeq = last?.seq ?? 0;
      const n = last?.n ?? 0;
      if (last?.epoch !== undefined && last.epoch > who.epoch) throw new FencedError(fn, streamId, new Error(`fenced by epoch ${last.epoch}`));
      const h = natsHeaders();
      h.set(kRecordKindHeader, "fence");
      h.set(kOutputNumberHeader, String(n));
      h.set(kExpectedLastSubjectSeqHeader, String(lastSeq));
      h.set(kMsgIdHeader, `${fn}/${streamId}/fence/${who.epoch}`);
      try {
        const ack = await this.#publisher.publish(subject, JSON.stringify({ type: "fence", epoch: who.epoch, worker: who.worker }), h);
        return new OutputWriter(this.#publisher, fn, streamId, subject, who.epoch, ack.seq, n, last?.kind === "end");
      } catch (err) {
        if (!isWrongLastSequence(err)) throw clusterError(`cannot fence the outputs of stream ${streamId} (${fn})`, err);
      }
    }
    throw new FencedError(fn, streamId, new Error("the output subject kept moving while fencing"));
  }

  /** A stream's numbered records (outputs, then the end) after output number `afterN`, in order. */
  async *read(fn: string, streamId: string, afterN = 0): AsyncGenerator<OutputRecord> {
    for await (const m of readSubject(this.#cluster.jsm, this.#cluster.settings.names.outputs, this.subject(fn, streamId))) {
      const kind = kindOf(m.header);
      if (kind !== "output" && kind !== "end") continue;
      const n = numberOf(m.header);
      if (n <= afterN) continue;
      yield { n, kind, seq: m.seq, data: m.data, headers: m.header };
    }
  }

  /** Follows a stream's outputs live from output number `from` (a gateway relaying to a producer or SSE). */
  follow(fn: string, streamId: string, from: number, onRecord: (r: FeedRecord & { kind: "output" | "end" }) => void, onError: (err: StreamfnError) => void): OrderedFeed {
    const feed = new OrderedFeed({
      nc: this.#cluster.nc,
      jsm: this.#cluster.jsm,
      stream: this.#cluster.settings.names.outputs,
      subject: this.subject(fn, streamId),
      positionOf: deliveredPositionOf,
      from,
      onRecord: (r) => onRecord({ ...r, kind: kindOf(r.headers) as "output" | "end" }),
      onError,
    });
    feed.start();
    return feed;
  }

  /** Drops a stream's outputs (after its retention, or when nobody may resume it any more). */
  async purge(fn: string, streamId: string): Promise<number> {
    try {
      return (await this.#cluster.jsm.streams.purge(this.#cluster.settings.names.outputs, { filter: this.subject(fn, streamId) })).purged;
    } catch (err) {
      throw clusterError(`cannot purge the outputs of stream ${streamId} (${fn})`, err);
    }
  }
}

/**
 * One owner's fenced writer for one stream. Writes are chained (each expects the sequence the
 * previous one got), so a handler does not wait for each output: `write` queues and resolves
 * when stored. Outputs numbered at or below what the log already held when this owner fenced
 * are dropped (a replay after takeover regenerates them): exactly once by number.
 */
export class OutputWriter {
  #lastSeq: number;
  #n: number;
  #chain: Promise<unknown> = Promise.resolve();
  #fenced: FencedError | undefined;
  #queued = 0;
  #drained: (() => void)[] = [];

  constructor(
    private readonly publisher: AckedPublisher,
    readonly fn: string,
    readonly streamId: string,
    readonly subject: string,
    readonly epoch: number,
    fenceSeq: number,
    /** Highest output number already in the log when this owner took over. */
    readonly delivered: number,
    /** The previous owner wrote the end record: the stream is complete. */
    readonly ended: boolean,
  ) {
    this.#lastSeq = fenceSeq;
    this.#n = delivered;
  }

  get fenced(): boolean {
    return this.#fenced !== undefined;
  }

  /** Highest output number stored by or before this writer. */
  get written(): number {
    return this.#n;
  }

  /** Records queued and not yet stored (or refused). */
  get backlog(): number {
    return this.#queued;
  }

  /** Calls `cb` once the backlog is down to `atMost`. */
  onceBacklogAtMost(atMost: number, cb: () => void): void {
    if (this.#queued <= atMost) cb();
    else this.#drained.push(() => (this.#queued <= atMost ? cb() : this.onceBacklogAtMost(atMost, cb)));
  }

  /** Appends output number `n` (1, 2, 3… in order). Resolves `dropped` for a number already delivered. */
  write(n: number, data: Uint8Array | string, extra?: Record<string, string>): Promise<{ dropped: boolean; seq: number }> {
    return this.#enqueue("output", n, data, extra);
  }

  /** Appends the end record (numbered after the last output). */
  end(data: Uint8Array | string): Promise<{ dropped: boolean; seq: number }> {
    return this.#enqueue("end", undefined, data);
  }

  #enqueue(kind: "output" | "end", n: number | undefined, data: Uint8Array | string, extra?: Record<string, string>): Promise<{ dropped: boolean; seq: number }> {
    const run = this.#chain.then(() => this.#publish(kind, n, data, extra));
    this.#queued++;
    this.#chain = run
      .catch(() => {})
      .then(() => {
        this.#queued--;
        if (this.#drained.length === 0) return;
        const cbs = this.#drained;
        this.#drained = [];
        for (const cb of cbs) cb();
      });
    return run;
  }

  async #publish(kind: "output" | "end", wanted: number | undefined, data: Uint8Array | string, extra?: Record<string, string>): Promise<{ dropped: boolean; seq: number }> {
    if (this.#fenced) throw this.#fenced;
    const n = wanted ?? this.#n + 1;
    if (kind === "output" && n <= this.#n) return { dropped: true, seq: 0 };
    if (kind === "end" && this.ended) return { dropped: true, seq: 0 };
    if (n !== this.#n + 1) throw new StreamfnError("INTERNAL", `output ${n} of stream ${this.streamId} written after ${this.#n}`);
    const h = natsHeaders();
    h.set(kRecordKindHeader, kind);
    h.set(kOutputNumberHeader, String(n));
    if (extra) for (const [k, v] of Object.entries(extra)) h.set(k, v);
    h.set(kMsgIdHeader, `${this.fn}/${this.streamId}/${n}@${this.epoch}`);
    let last: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      h.set(kExpectedLastSubjectSeqHeader, String(this.#lastSeq));
      try {
        // A retry after a lost ack is answered as a duplicate of the first (same msg id) with its
        // sequence. The epoch is part of the id: the server checks duplicates before the expected
        // sequence, so without it a stale owner writing the number its successor just wrote
        // would be answered "duplicate" (with the successor's sequence) instead of refused.
        const ack = await this.publisher.publish(this.subject, data, h);
        this.#lastSeq = ack.seq;
        this.#n = n;
        return { dropped: false, seq: ack.seq };
      } catch (err) {
        if (isWrongLastSequence(err)) {
          this.#fenced = new FencedError(this.fn, this.streamId, err);
          throw this.#fenced;
        }
        last = err;
      }
    }
    throw clusterError(`cannot append output ${n} of stream ${this.streamId} (${this.fn})`, last);
  }
}
