import { randomUUID } from "node:crypto";
import type { Subscription } from "@nats-io/transport-node";
import type { KvWatchEntry } from "@nats-io/kv";
import { StreamfnError } from "../api/errors.js";
import type { ErrorRecord } from "../api/errors.js";
import type { EndReason, ResolvedOptions } from "../api/types.js";
import type {
  BatchEvent,
  BatchResult,
  EndRecord,
  EndedStream,
  OutputSink,
  ProducerFlow,
  PushResult,
  RetainedOutput,
  StreamHandle,
  StreamLogSnapshot,
  StreamState,
  StreamTable,
} from "../router/stream-table.js";
import { isWrongLastSequence } from "./nats-errors.js";
import type { ClusterHandle } from "./open-cluster.js";
import type { OrderedFeed } from "./ordered-feed.js";
import { GatewayHold, holdSubject } from "./output-hold.js";
import { ensureBuckets, kBinaryOutputHeader, kEndReasonHeader, kEventKindHeader, kEventSeqHeader, progressSubject, streamRecordKey } from "./wire.js";
import type { CatalogEntry, ClusterBuckets, Progress, StreamRecord } from "./wire.js";

// One of each per process: outputs and events pass through them one by one.
const kDecoder = new TextDecoder();
const kEncoder = new TextEncoder();

/** A stream's end record as the worker wrote it to the output log; an unreadable one fails the stream. */
function endRecordOf(data: Uint8Array, events: number, outputs: number): EndRecord {
  try {
    return JSON.parse(kDecoder.decode(data)) as EndRecord;
  } catch {
    return { type: "end", status: "failed", reason: "error", events, outputs, error: { code: "INTERNAL", message: "unreadable end record" } };
  }
}

const kStreamIdPattern = /^[A-Za-z0-9._:~-]{1,128}$/;
/** A producer that ignores pause may overshoot the in-flight bound this much before INBOX_FULL. */
const kHardFactor = 4;
const kMaxOpenWaiters = 10_000;
const kEndedMax = 10_000;

function endedError(fn: string, streamId: string, ended: { status?: string; reason?: string; endedAt?: number } | undefined): StreamfnError {
  const what = ended?.status ? ` (${ended.status}, reason ${ended.reason})` : "";
  const when = ended?.endedAt ? ` at ${new Date(ended.endedAt).toISOString()}` : "";
  return new StreamfnError("STREAM_ENDED", `stream "${streamId}" of ${fn} already ended${what}${when}; start a new stream with another id`);
}

/** The gateway's mirror of one stream it accepts events for: positions it assigned, outputs it relayed. */
class ClusterStream implements StreamHandle {
  state: StreamState = "waiting";
  /** The envelope's text is what is logged for the worker (see #append). */
  readonly forwardsEnvelopeText = true;
  lastSeq = 0;
  events = 0;
  duplicates = 0;
  outputs = 0;
  inputEnd: EndReason | undefined;
  end: EndRecord | undefined;
  readonly openedAt = Date.now();
  boundAt: number | undefined;
  readonly retained: RetainedOutput[] = [];
  readonly sinks = new Set<OutputSink>();
  producer: ProducerFlow | undefined;
  producerPaused = false;
  /** Positions given out (events and the end marker). */
  position = 0;
  /** Positions the worker's handler has taken (from its progress reports). */
  consumed = 0;
  lastEventTime = Date.now();
  feed: OrderedFeed | undefined;
  progress: Subscription | undefined;
  queuedForWork = false;
  /** This gateway's attachment in the stream's record; a control message naming another one cuts it off. */
  attach: string = randomUUID();
  readonly version: string;

  constructor(
    readonly functionName: string,
    readonly streamId: string,
    readonly options: Readonly<ResolvedOptions>,
    version: string,
  ) {
    this.version = version;
  }

  get queued(): number {
    return Math.max(0, this.position - this.consumed);
  }
  readonly inflight = 0;
  /** Signals the owning worker while this gateway's sinks are backed up (set when the stream is set up). */
  hold: GatewayHold | undefined;
  get heldOutputs(): number {
    return this.hold?.holding ? this.hold.heldOutputs : 0;
  }
  get subscribers(): number {
    return this.sinks.size;
  }
  readonly instanceId = undefined;
  logSnapshot(): StreamLogSnapshot {
    return { entries: [], dropped: 0 } as unknown as StreamLogSnapshot;
  }
}

export interface ClusterStreamTableOptions {
  /** This gateway's name in stream records. */
  name?: string;
  /** Outputs kept per stream for subscribers resuming from an output number. Default 128. */
  outputRetention?: number;
  /** How long ended streams are remembered here. Default 10 min. */
  endedRetentionMs?: number;
}

/**
 * The stream table of cluster mode, as one gateway sees it. A stream's events are appended to
 * the event log (positions assigned here), its work item queued for a worker, its outputs
 * followed from the output log; the streams bucket makes a stream id unique cluster-wide.
 */
export class ClusterStreamTable implements StreamTable {
  readonly name: string;
  readonly #c: ClusterHandle;
  readonly #buckets: ClusterBuckets;
  readonly #catalog = new Map<string, CatalogEntry>();
  readonly #live = new Map<string, ClusterStream>();
  readonly #ended = new Map<string, EndedStream>();
  readonly #waiters = new Map<string, Set<(s: StreamHandle) => void>>();
  #waiterCount = 0;
  readonly #options: Required<ClusterStreamTableOptions>;
  #closing = false;
  #watch: { stop(): void } | undefined;

  private constructor(c: ClusterHandle, buckets: ClusterBuckets, options: ClusterStreamTableOptions) {
    this.#c = c;
    this.#buckets = buckets;
    this.#options = { name: options.name ?? randomUUID(), outputRetention: options.outputRetention ?? 128, endedRetentionMs: options.endedRetentionMs ?? 600_000 };
    this.name = this.#options.name;
  }

  static async create(c: ClusterHandle, options: ClusterStreamTableOptions = {}): Promise<ClusterStreamTable> {
    const buckets = await ensureBuckets(c.cluster);
    const t = new ClusterStreamTable(c, buckets, options);
    await t.#watchCatalog();
    return t;
  }

  async #watchCatalog(): Promise<void> {
    const it = await this.#buckets.catalog.watch();
    this.#watch = it;
    void (async () => {
      for await (const e of it as AsyncIterable<KvWatchEntry>) this.#catalogEntry(e);
    })().catch(() => {});
  }

  #catalogEntry(e: KvWatchEntry): void {
    if (e.operation !== "PUT") {
      this.#catalog.delete(e.key);
      return;
    }
    try {
      this.#catalog.set(e.key, e.json<CatalogEntry>());
    } catch {
      // not a catalog record
    }
  }

  async #lookup(fn: string): Promise<CatalogEntry | undefined> {
    const known = this.#catalog.get(fn);
    if (known) return known;
    const e = await this.#buckets.catalog.get(fn).catch(() => null);
    if (!e || e.operation !== "PUT") return undefined;
    const entry = e.json<CatalogEntry>();
    this.#catalog.set(fn, entry);
    return entry;
  }

  catalog(): Map<string, CatalogEntry> {
    return this.#catalog;
  }

  get liveCount(): number {
    return this.#live.size;
  }

  live(): Iterable<StreamHandle> {
    return [...this.#live.values()];
  }

  hasFunction(fn: string): boolean {
    return this.#catalog.has(fn);
  }

  limits(fn: string): Readonly<ResolvedOptions> | undefined {
    return this.#catalog.get(fn)?.options;
  }

  /** Workers parse every event where the handler runs, whatever its tier (see ClusterStream). */
  forwardsEnvelopeText(): boolean {
    return true;
  }

  get(fn: string, streamId: string): StreamHandle | undefined {
    return this.#live.get(`${fn}\n${streamId}`);
  }

  ended(fn: string, streamId: string): EndedStream | undefined {
    const key = `${fn}\n${streamId}`;
    const e = this.#ended.get(key);
    if (e && Date.now() - e.endedAt > this.#options.endedRetentionMs) {
      this.#ended.delete(key);
      return undefined;
    }
    return e;
  }

  endedOf(fn: string): { streamId: string; ended: EndedStream }[] {
    const out: { streamId: string; ended: EndedStream }[] = [];
    for (const [key, ended] of this.#ended) {
      const [f, streamId] = key.split("\n") as [string, string];
      if (f === fn && Date.now() - ended.endedAt <= this.#options.endedRetentionMs) out.push({ streamId, ended });
    }
    return out.reverse();
  }

  async open(fn: string, streamId: string | undefined, sink?: OutputSink, resume?: { after: number }): Promise<StreamHandle> {
    if (this.#closing) throw new StreamfnError("SHUTTING_DOWN", "the gateway is shutting down");
    const entry = await this.#lookup(fn);
    if (!entry) throw new StreamfnError("FUNCTION_NOT_FOUND", `no function named "${fn}"`);
    const id = streamId ?? randomUUID();
    if (!kStreamIdPattern.test(id)) throw new StreamfnError("INVALID_STREAM_ID", `stream id must be 1-128 of A-Z a-z 0-9 . _ : ~ -, got ${JSON.stringify(id)}`);
    const key = `${fn}\n${id}`;
    if (this.#live.has(key) && !resume) throw new StreamfnError("STREAM_BUSY", `stream ${id} is open on another connection`);
    const endedHere = this.ended(fn, id);
    if (endedHere) throw endedError(fn, id, endedHere);
    const attach = randomUUID();
    const record: StreamRecord = { state: "live", gateway: this.name, openedAt: Date.now(), attach };
    let resumed: { position: number; lastSeq: number; inputEnd: EndReason | undefined } | undefined;
    const kvKey = streamRecordKey(fn, id);
    try {
      await this.#buckets.streams.create(kvKey, JSON.stringify(record));
    } catch (err) {
      if (!isWrongLastSequence(err) && !String(err).includes("exists")) throw new StreamfnError("CLUSTER_ERROR", `cannot claim stream id ${id}: ${String(err)}`);
      const current = await this.#buckets.streams.get(kvKey).catch(() => null);
      const prev = current?.operation === "PUT" ? current.json<StreamRecord>() : undefined;
      if (prev?.state === "ended") {
        const end = prev.end as { status?: string; reason?: string } | undefined;
        // Past the retention window the id is free again: take it over, checked against the revision read.
        // Never inside the server's duplicate window either: the new run's messages would be taken for the old run's.
        const keep = Math.max(this.#options.endedRetentionMs, this.#c.cluster.settings.duplicateWindowMs);
        if (Date.now() - (prev.endedAt ?? 0) <= keep) throw endedError(fn, id, { ...end, endedAt: prev.endedAt });
        try {
          await this.#buckets.streams.update(kvKey, JSON.stringify(record), current!.revision);
        } catch {
          throw new StreamfnError("STREAM_BUSY", `stream "${id}" of ${fn} is open on another connection`);
        }
        await this.#c.outputs.purge(fn, id).catch(() => {});
        await this.#c.events.purge(fn, id).catch(() => {});
      } else if (prev?.state === "live" && resume) {
        resumed = await this.#reattach(fn, id, { ...record, openedAt: prev.openedAt }, current!.revision);
      } else {
        throw new StreamfnError("STREAM_BUSY", `stream "${id}" of ${fn} is open on another connection`);
      }
    }
    if (resumed) {
      const old = this.#live.get(key);
      if (old) this.#detach(old);
    }
    if (this.#live.has(key)) throw new StreamfnError("STREAM_BUSY", `stream ${id} is open on another connection`);
    const s = new ClusterStream(fn, id, entry.options, entry.version);
    s.attach = attach;
    if (resumed) {
      // The stream runs already: continue its positions, drop resends at or below its last seq,
      // and do not queue it again (its work item is held by its worker).
      s.position = resumed.position;
      s.consumed = resumed.position;
      s.lastSeq = resumed.lastSeq;
      s.events = resumed.position;
      s.inputEnd = resumed.inputEnd;
      s.queuedForWork = true;
      s.state = "running";
      s.boundAt = Date.now();
      s.outputs = resume!.after;
    }
    if (sink) s.sinks.add(sink);
    this.#live.set(key, s);
    const waiting = this.#waiters.get(key);
    if (waiting) {
      this.#waiters.delete(key);
      this.#waiterCount -= waiting.size;
      for (const cb of waiting) cb(s);
    }
    s.hold = new GatewayHold(this.#c.cluster.nc, holdSubject(this.#c.cluster), { fn, sid: id, gw: this.name }, () => s.sinks);
    s.progress = this.#c.cluster.nc.subscribe(progressSubject(this.#c.cluster, fn, id), {
      callback: (err, msg) => {
        if (err) return;
        try {
          const p = msg.json<Progress & { takenBy?: string; attach?: string }>();
          if (p.attach !== undefined) {
            if (p.attach !== s.attach) this.#detach(s);
            return;
          }
          if (p.consumed > s.consumed) {
            s.consumed = p.consumed;
            if (s.state === "waiting") {
              s.state = "running";
              s.boundAt = Date.now();
            }
            this.#flow(s);
          }
        } catch {
          // not a progress message
        }
      },
    });
    s.feed = this.#c.outputs.follow(
      fn,
      id,
      resumed ? resume!.after + 1 : 1,
      (r) => {
        if (r.kind === "end") {
          this.#close(s, endRecordOf(r.data, s.events, s.outputs));
          return;
        }
        if (s.state === "waiting") {
          s.state = "running";
          s.boundAt = Date.now();
        }
        s.outputs = r.position;
        const binary = r.headers?.get(kBinaryOutputHeader) === "1";
        const json = binary ? undefined : kDecoder.decode(r.data);
        const bytes = binary ? r.data : undefined;
        const kept: RetainedOutput = binary ? { n: r.position, bytes: bytes! } : { n: r.position, json: json! };
        if (this.#options.outputRetention > 0) {
          s.retained.push(kept);
          if (s.retained.length > this.#options.outputRetention) s.retained.shift();
        }
        let backed = false;
        for (const k of s.sinks) {
          k.output(r.position, json, bytes);
          if (k.backedUp?.()) backed = true;
        }
        if (s.hold!.holding) s.hold!.heldOutputs++;
        if (backed || s.hold!.holding) s.hold!.check();
      },
      (err) => this.#close(s, { type: "end", status: "failed", reason: "error", events: s.events, outputs: s.outputs, error: { code: err.code, message: err.message } }),
    );
    return s;
  }

  async followLog(fn: string, streamId: string, after: number, sink: OutputSink): Promise<(() => void) | undefined> {
    if (!kStreamIdPattern.test(streamId)) return undefined;
    const e = await this.#buckets.streams.get(streamRecordKey(fn, streamId)).catch(() => null);
    if (!e || e.operation !== "PUT") return undefined;
    const feed = this.#c.outputs.follow(
      fn,
      streamId,
      after + 1,
      (r) => {
        if (r.kind === "end") {
          sink.end(endRecordOf(r.data, 0, r.position - 1));
          feed.close();
          return;
        }
        const binary = r.headers?.get(kBinaryOutputHeader) === "1";
        sink.output(r.position, binary ? undefined : kDecoder.decode(r.data), binary ? r.data : undefined);
      },
      (err) => sink.end({ type: "end", status: "failed", reason: "error", events: 0, outputs: 0, error: { code: err.code, message: err.message } }),
    );
    return () => feed.close();
  }

  /**
   * Takes a live stream over for a producer that reconnected here: the record names this
   * attachment (revision-checked, so of two racing reattachments one wins and the other gets
   * STREAM_BUSY), the attachment before it is told on the stream's control subject, and the
   * event log's last record says where positions and producer seqs go on.
   */
  async #reattach(fn: string, id: string, record: StreamRecord, revision: number): Promise<{ position: number; lastSeq: number; inputEnd: EndReason | undefined }> {
    try {
      await this.#buckets.streams.update(streamRecordKey(fn, id), JSON.stringify(record), revision);
    } catch {
      throw new StreamfnError("STREAM_BUSY", `stream "${id}" of ${fn} was reattached by another connection at the same time`);
    }
    this.#c.cluster.nc.publish(progressSubject(this.#c.cluster, fn, id), JSON.stringify({ takenBy: this.name, attach: record.attach }));
    let last;
    try {
      last = await this.#c.events.last(fn, id);
    } catch (err) {
      throw new StreamfnError("CLUSTER_ERROR", `cannot read the event log of stream ${id}: ${String(err)}`);
    }
    if (!last) return { position: 0, lastSeq: 0, inputEnd: undefined };
    const kind = last.headers?.get(kEventKindHeader);
    const seq = Number(last.headers?.get(kEventSeqHeader) || 0);
    const ended = kind === "end" || kind === "cancel";
    // After an end marker the last event's seq is one record back: fetch it so resends are still recognized.
    let lastSeq = seq;
    if (ended && last.position > 1) {
      for await (const e of this.#c.events.read(fn, id)) {
        const q = Number(e.headers?.get(kEventSeqHeader) || 0);
        if (q > lastSeq) lastSeq = q;
      }
    }
    return { position: last.position, lastSeq, inputEnd: ended ? ((last.headers?.get(kEndReasonHeader) as EndReason | undefined) ?? "end") : undefined };
  }

  /** Another connection took the stream over: this one is cut off, the stream itself goes on (nothing is recorded as ended). */
  #detach(s: ClusterStream): void {
    if (s.state === "done") return;
    s.state = "done";
    s.feed?.close();
    s.progress?.unsubscribe();
    s.hold?.release();
    const key = `${s.functionName}\n${s.streamId}`;
    if (this.#live.get(key) === s) this.#live.delete(key);
    const record: ErrorRecord = { code: "STREAM_TAKEN_OVER", message: `stream "${s.streamId}" of ${s.functionName} was reattached by a newer connection; this one is cut off` };
    for (const k of [...s.sinks]) {
      if (k.detach) k.detach(record);
      else k.end({ type: "end", status: "failed", reason: "error", events: s.events, outputs: s.outputs, error: record });
    }
    s.sinks.clear();
  }

  /**
   * Queues the stream for a worker on its first use (producer attached, first event, end or
   * cancel), not at open: a handshake that fails after open leaves nothing behind to run.
   */
  #queue(s: ClusterStream): void {
    if (s.queuedForWork) return;
    s.queuedForWork = true;
    this.#c.work.publishOpen(s.functionName, s.streamId).catch((err: unknown) => {
      const e = err instanceof StreamfnError ? err : new StreamfnError("CLUSTER_ERROR", String(err));
      this.#close(s, { type: "end", status: "failed", reason: "error", events: s.events, outputs: s.outputs, error: { code: e.code, message: e.message } });
    });
  }

  openOrGet(fn: string, streamId: string): StreamHandle | Promise<StreamHandle> {
    return this.get(fn, streamId) ?? this.open(fn, streamId);
  }

  awaitOpen(fn: string, streamId: string, cb: (s: StreamHandle) => void): (() => void) | undefined {
    if (this.#waiterCount >= kMaxOpenWaiters) return undefined;
    const key = `${fn}\n${streamId}`;
    let set = this.#waiters.get(key);
    if (!set) this.#waiters.set(key, (set = new Set()));
    set.add(cb);
    this.#waiterCount++;
    return () => {
      if (set.delete(cb)) this.#waiterCount--;
      if (set.size === 0 && this.#waiters.get(key) === set) this.#waiters.delete(key);
    };
  }

  #check(s: ClusterStream, newEvents: number, bytes: readonly number[]): void {
    if (s.state === "done") throw new StreamfnError("STREAM_ENDED", `stream ${s.streamId} has ended`);
    if (s.inputEnd) throw new StreamfnError("STREAM_INPUT_ENDED", `the input of stream ${s.streamId} has ended`);
    for (const b of bytes) {
      if (b > s.options.maxEventBytes) throw new StreamfnError("EVENT_TOO_LARGE", `event of ${b} bytes exceeds maxEventBytes (${s.options.maxEventBytes})`);
    }
    if (s.queued + newEvents > s.options.inboxLimit * kHardFactor) {
      throw new StreamfnError("INBOX_FULL", `stream ${s.streamId} has ${s.queued} events in flight (limit ${s.options.inboxLimit})`, { retryAfterMs: 1000 });
    }
  }

  push(stream: StreamHandle, data: unknown, seq: number | undefined, binary: boolean, bytes: number, envelopeText?: string): PushResult {
    const s = stream as ClusterStream;
    if (seq !== undefined && seq <= s.lastSeq) {
      s.duplicates++;
      return { accepted: false, seq };
    }
    this.#check(s, 1, [bytes]);
    this.#append(s, data, seq, binary, envelopeText);
    return { accepted: true, seq: s.lastSeq };
  }

  #append(s: ClusterStream, data: unknown, seq: number | undefined, binary: boolean, envelopeText?: string): void {
    s.events++;
    s.lastSeq = seq ?? s.lastSeq + 1;
    s.lastEventTime = Date.now();
    const position = ++s.position;
    // The envelope's text as it came is logged when there is one: the worker hands it to the
    // instance unparsed, so the event is parsed only in the sandbox (the gateway judged it by a
    // scan, or parsed it when the scan was unsure), never serialised again.
    const kind = binary ? "bin" : envelopeText !== undefined ? "env" : "json";
    const body = binary ? new Uint8Array(data as ArrayBuffer) : kEncoder.encode(envelopeText ?? JSON.stringify(data));
    const extra: Record<string, string> = { [kEventKindHeader]: kind, [kEventSeqHeader]: String(s.lastSeq) };
    this.#publish(s, position, body, extra);
    if (s.events >= s.options.maxEvents) this.endInput(s, "max-events");
    this.#flow(s);
  }

  #publish(s: ClusterStream, position: number, body: Uint8Array, extra: Record<string, string>): void {
    this.#queue(s);
    this.#c.events.append(s.functionName, s.streamId, position, body, extra).catch((err: unknown) => {
      const e = err instanceof StreamfnError ? err : new StreamfnError("CLUSTER_ERROR", String(err));
      this.fail(s, { code: e.code, message: e.message });
    });
  }

  pushBatch(stream: StreamHandle, events: readonly BatchEvent[], end: boolean): BatchResult {
    const s = stream as ClusterStream;
    let last = s.lastSeq;
    const fresh: BatchEvent[] = [];
    let duplicates = 0;
    for (const e of events) {
      if (e.seq !== undefined && e.seq <= last) {
        duplicates++;
        continue;
      }
      fresh.push(e);
      last = e.seq ?? last + 1;
    }
    if (fresh.length === 0 && (s.inputEnd || s.state === "done" || !end)) {
      s.duplicates += duplicates;
      return { accepted: 0, duplicates, lastSeq: s.lastSeq };
    }
    this.#check(s, fresh.length, fresh.map((e) => e.bytes));
    s.duplicates += duplicates;
    let accepted = 0;
    for (const e of fresh) {
      if (s.inputEnd) {
        return { accepted, duplicates, lastSeq: s.lastSeq, rejected: fresh.length - accepted, error: { code: "STREAM_INPUT_ENDED", message: `the input of stream ${s.streamId} ended after maxEvents (${s.options.maxEvents})` } };
      }
      this.#append(s, e.data, e.seq, e.binary, e.text);
      accepted++;
    }
    const out: BatchResult = { accepted, duplicates, lastSeq: s.lastSeq };
    if (end && !s.inputEnd) {
      this.endInput(s, "end");
      out.ended = true;
    }
    return out;
  }

  endInput(stream: StreamHandle, reason: EndReason): void {
    const s = stream as ClusterStream;
    if (s.inputEnd || s.state === "done") return;
    s.inputEnd = reason;
    this.#publish(s, ++s.position, new Uint8Array(0), { [kEventKindHeader]: "end", [kEndReasonHeader]: reason });
  }

  attachProducer(stream: StreamHandle, flow: ProducerFlow): void {
    const s = stream as ClusterStream;
    s.producer = flow;
    this.#queue(s);
    this.#flow(s);
  }

  /** Pauses the producer while its events in flight (appended, not yet taken by the handler) reach inboxLimit. */
  #flow(s: ClusterStream): void {
    const full = s.queued >= s.options.inboxLimit;
    if (full && !s.producerPaused) {
      s.producerPaused = true;
      s.producer?.pause();
    } else if (!full && s.producerPaused) {
      s.producerPaused = false;
      s.producer?.resume();
    }
  }

  addSink(stream: StreamHandle, sink: OutputSink): void {
    (stream as ClusterStream).sinks.add(sink);
  }

  removeSink(stream: StreamHandle, sink: OutputSink): void {
    const s = stream as ClusterStream;
    s.sinks.delete(sink);
    if (s.hold?.holding) s.hold.check();
  }

  fail(stream: StreamHandle, error: ErrorRecord): void {
    const s = stream as ClusterStream;
    if (s.state === "done") return;
    if (!s.inputEnd) s.inputEnd = "end";
    this.#publish(s, ++s.position, kEncoder.encode(JSON.stringify(error)), { [kEventKindHeader]: "cancel" });
    this.#close(s, { type: "end", status: "failed", reason: "error", events: s.events, outputs: s.outputs, error });
  }

  abandon(stream: StreamHandle): void {
    const s = stream as ClusterStream;
    if (s.state === "done") return;
    if (s.queuedForWork) {
      this.#publish(s, ++s.position, kEncoder.encode(JSON.stringify({ code: "STREAM_CANCELLED", message: "the producer never connected" })), { [kEventKindHeader]: "cancel" });
    }
    this.#close(s, undefined);
    if (!s.queuedForWork) void this.#buckets.streams.delete(streamRecordKey(s.functionName, s.streamId)).catch(() => {});
  }

  /** The stream is done here: sinks get the end, the id is remembered as ended (cluster-wide, in the streams bucket). */
  #close(s: ClusterStream, end: EndRecord | undefined): void {
    if (s.state === "done") return;
    s.state = "done";
    s.feed?.close();
    s.progress?.unsubscribe();
    s.hold?.release();
    const key = `${s.functionName}\n${s.streamId}`;
    if (this.#live.get(key) === s) this.#live.delete(key);
    if (s.producerPaused) s.producer?.resume();
    if (!end) return;
    s.end = end;
    const { type: _type, ...rest } = end;
    this.#ended.set(key, { ...rest, endedAt: Date.now(), openedAt: s.openedAt, version: s.version, duplicates: s.duplicates, lastSeq: s.lastSeq, retained: [...s.retained] });
    if (this.#ended.size > kEndedMax) this.#ended.delete(this.#ended.keys().next().value!);
    for (const k of [...s.sinks]) k.end(end);
    s.sinks.clear();
    const record: StreamRecord = { state: "ended", gateway: this.name, openedAt: s.openedAt, endedAt: Date.now(), end };
    void this.#buckets.streams.put(streamRecordKey(s.functionName, s.streamId), JSON.stringify(record)).catch(() => {});
  }

  async close(): Promise<void> {
    this.#closing = true;
    this.#watch?.stop();
    for (const s of [...this.#live.values()]) {
      s.feed?.close();
      s.progress?.unsubscribe();
      s.hold?.release();
    }
  }
}
