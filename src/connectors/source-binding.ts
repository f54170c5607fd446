import { StreamfnError } from "../api/errors.js";
import type { StreamSource } from "../api/sources.js";
import { sourceBroker } from "../api/sources.js";
import type { EndRecord, OutputSink, StreamHandle, StreamTable } from "../router/stream-table.js";
import type { BrokerLink, InboundMessage } from "./link.js";
import type { ConnectorLogger } from "./mqtt-link.js";
import { renderTopic, topicLevel, topicMatches } from "./topics.js";

/** Counters of one source, for /v1/status, /metrics and the dashboard. */
export interface SourceCounters {
  /** Messages received on the source's topic (end markers included). */
  messagesIn: number;
  /** Payloads that did not parse as JSON: counted, logged, skipped (the stream goes on). */
  parseFailures: number;
  streamsOpened: number;
  /** Redeliveries dropped by seq (at or below the stream's last). */
  duplicates: number;
  /** Messages missing by seq (a jump past the stream's last + 1): what the broker or a publisher lost. */
  gaps: number;
  /** Messages the connector dropped: NATS past its queue's bound, or refused by the table (no id, too large, function gone). */
  dropped: number;
  endMarkers: number;
  /** Times a full inbox held the source back (MQTT: stopped acknowledging and reading). */
  paused: number;
  outputs: number;
}

/** One message as an event, on its way to its stream. */
interface Ev {
  data: unknown;
  /** For JSON: the envelope text `{"data":<payload>}` handed to the instance in place of `data`. */
  text: string | undefined;
  seq: number | undefined;
  binary: boolean;
  bytes: number;
  topic: string;
}

/** A stream the source opened and still feeds. */
interface Entry {
  key: string;
  handle: StreamHandle | undefined;
  paused: boolean;
  waiters: (() => void)[];
}

/** Wait between retries while the table has no slot for a new stream (the source is held meanwhile). */
const kCapacityRetryMs = 100;
/** Log lines of one kind per source at most this often: a broken publisher must not flood the log. */
const kLogEveryMs = 1_000;
/** Burst counters kept per key, for ids of bursts after the first (see #freeId). */
const kBurstMemory = 100_000;

/**
 * One source bound to one function: a producer on the stream table, as a WebSocket connection
 * is. Every message is an event of the stream its key names; the first opens it. The table
 * ends streams (idle, max events, duration); an end marker ends one here. While a stream's
 * inbox is full its next message waits, and so does the link (see MessageHandler).
 */
export class SourceBinding {
  readonly functionName: string;
  readonly source: StreamSource;
  readonly broker: "mqtt" | "nats";
  readonly topic: string;
  readonly counters: SourceCounters = {
    messagesIn: 0, parseFailures: 0, streamsOpened: 0, duplicates: 0, gaps: 0, dropped: 0, endMarkers: 0, paused: 0, outputs: 0,
  };
  /** The last error subscribing, if the source is not subscribed. */
  error: string | undefined;
  readonly #table: StreamTable;
  readonly #link: BrokerLink | undefined;
  readonly #logger: ConnectorLogger;
  readonly #live = new Map<string, Entry>();
  readonly #bursts = new Map<string, number>();
  readonly #decoder = new TextDecoder("utf-8", { fatal: true });
  readonly #loggedAt = new Map<string, number>();
  #unsubscribe: (() => void)[] = [];
  #closed = false;

  constructor(table: StreamTable, functionName: string, source: StreamSource, link: BrokerLink | undefined, logger: ConnectorLogger) {
    this.#table = table;
    this.functionName = functionName;
    this.source = source;
    this.broker = sourceBroker(source);
    this.topic = source[this.broker]!;
    this.#link = link;
    this.#logger = logger;
  }

  get subscribed(): boolean {
    return this.#unsubscribe.length > 0;
  }

  /** Streams this source opened that are still live. */
  get liveStreams(): number {
    return this.#live.size;
  }

  get connected(): boolean {
    return this.#link?.connected === true && this.subscribed;
  }

  async start(): Promise<void> {
    if (!this.#link) {
      // A function can carry its sources into a server started without brokers (a plain `serve`): said once, not an error.
      this.error = `not bound: no ${this.broker === "mqtt" ? "MQTT broker (--mqtt)" : "NATS server (--nats)"} given to the server`;
      this.#logger.info({ fn: this.functionName, source: this.topic }, `source ${this.error}`);
      return;
    }
    const qos = this.source.qos ?? 1;
    const drop = (): void => void this.counters.dropped++;
    try {
      this.#unsubscribe.push(await this.#link.subscribe(this.topic, qos, (m) => this.#onMessage(m, false), drop));
      const endTopic = this.source.end?.topic;
      if (endTopic) this.#unsubscribe.push(await this.#link.subscribe(endTopic, qos, (m) => this.#onMessage(m, true), drop));
      this.error = undefined;
    } catch (err) {
      this.stop();
      this.error = (err as Error).message;
      this.#logger.error({ fn: this.functionName, topic: this.topic, err: this.error }, "source not subscribed");
    }
  }

  /** Unsubscribes. Streams already open go on and end as usual (idle, or the server's shutdown). */
  stop(): void {
    this.#closed = true;
    for (const u of this.#unsubscribe) u();
    this.#unsubscribe = [];
    for (const e of this.#live.values()) this.#wake(e);
  }

  #logLimited(kind: string, obj: object, msg: string): void {
    const now = performance.now();
    if (now - (this.#loggedAt.get(kind) ?? -Infinity) < kLogEveryMs) return;
    this.#loggedAt.set(kind, now);
    this.#logger.warn({ fn: this.functionName, source: this.topic, ...obj }, msg);
  }

  #onMessage(msg: InboundMessage, isEndTopic: boolean): Promise<void> | undefined {
    if (this.#closed) return undefined;
    // A message on the end topic that also matches the source filter is seen once, as the end marker.
    if (!isEndTopic && this.source.end?.topic && topicMatches(this.source.end.topic, msg.topic, this.broker)) return undefined;
    this.counters.messagesIn++;
    const binary = this.source.payload === "binary";
    let data: unknown;
    let text: string | undefined;
    if (binary) {
      data = msg.payload;
    } else {
      try {
        text = msg.payload.length === 0 && isEndTopic ? "null" : this.#decoder.decode(msg.payload);
        data = JSON.parse(text);
      } catch (err) {
        this.counters.parseFailures++;
        this.#logLimited("parse", { topic: msg.topic, bytes: msg.payload.length, err: (err as Error).message }, "payload is not JSON; skipped");
        return undefined;
      }
    }
    const key = this.#keyOf(msg.topic, data);
    if (key === undefined) {
      this.counters.dropped++;
      const where = "level" in this.source.streamId! ? `level ${this.source.streamId.level} of the topic` : `field "${this.source.streamId!.field}"`;
      this.#logLimited("key", { topic: msg.topic }, `message without a stream id (${where}); dropped`);
      return undefined;
    }
    const endField = this.source.end?.field;
    if (isEndTopic || (endField !== undefined && isRecord(data) && data[endField] === true)) {
      this.counters.endMarkers++;
      const e = this.#live.get(key);
      if (e?.handle) this.#table.endInput(e.handle, "end");
      return undefined;
    }
    let seq = msg.seq;
    if (seq === undefined && isRecord(data)) {
      const s = data[this.source.seqField ?? "seq"];
      if (typeof s === "number" && Number.isSafeInteger(s) && s > 0) seq = s;
    }
    // The text goes to the instance as an envelope (a string is cheap to hand over; the parsed value is not), as the WebSocket path does.
    const event: Ev = { data, text: text === undefined ? undefined : `{"data":${text}}`, seq, binary, bytes: msg.payload.length, topic: msg.topic };
    return this.#deliver(key, event);
  }

  #keyOf(topic: string, data: unknown): string | undefined {
    const s = this.source.streamId!;
    if ("level" in s) return topicLevel(topic, s.level, this.broker);
    if (!isRecord(data)) return undefined;
    const v = data[s.field];
    if (typeof v === "string" && v !== "") return v;
    if (typeof v === "number" && Number.isFinite(v)) return String(v);
    return undefined;
  }

  #deliver(key: string, ev: Ev): Promise<void> | undefined {
    let e = this.#live.get(key);
    // A stream whose input ended (max events, an end marker) takes no more: the next message opens the key's next stream.
    if (e?.handle && (e.handle.inputEnd !== undefined || e.handle.state === "done")) {
      this.#live.delete(key);
      this.#wake(e);
      e = undefined;
    }
    if (!e) {
      e = { key, handle: undefined, paused: false, waiters: [] };
      this.#live.set(key, e);
      const opening = this.#open(e);
      if (opening) return opening.then(() => this.#afterOpen(e!, ev));
      // Refused at once (an invalid id, the function gone): counted and logged; the source goes on.
      if (!e.handle) {
        this.counters.dropped++;
        return undefined;
      }
    }
    if (!e.handle) {
      // Still opening (cluster tables answer asynchronously): wait behind it.
      const entry = e;
      return new Promise<void>((r) => entry.waiters.push(r)).then(() => this.#afterOpen(entry, ev));
    }
    return this.#afterOpen(e, ev);
  }

  #afterOpen(e: Entry, ev: Ev): Promise<void> | undefined {
    if (!e.handle || this.#live.get(e.key) !== e) {
      // The open failed (counted and logged) or the stream ended while this message waited:
      // a stream that had events ended its burst, so the message opens the next one; one that
      // failed before taking any (its instance did not start) is not retried in a loop.
      if (!e.handle) {
        this.counters.dropped++;
        return undefined;
      }
      if (e.handle.events === 0) {
        this.counters.dropped++;
        this.#logLimited("failed-open", { streamId: e.handle.streamId, err: e.handle.end?.error?.message }, "the stream failed at its start; message dropped");
        return undefined;
      }
      return this.#deliver(e.key, ev);
    }
    if (e.paused && !this.#closed) {
      this.counters.paused++;
      return new Promise<void>((r) => e.waiters.push(r)).then(() => this.#afterOpen(e, ev));
    }
    return this.#push(e, ev);
  }

  #push(e: Entry, ev: Ev): Promise<void> | undefined {
    const h = e.handle!;
    const { seq, topic } = ev;
    if (seq !== undefined && seq > h.lastSeq + 1 && h.events > 0) this.counters.gaps += seq - h.lastSeq - 1;
    let value = ev.data;
    if (ev.binary) {
      // The table may transfer the buffer to the instance: a copy of exactly the payload's bytes.
      const b = ev.data as Uint8Array;
      value = b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
    }
    try {
      const r = this.#table.push(h, value, seq, ev.binary, ev.bytes, ev.text);
      if (!r.accepted) this.counters.duplicates++;
    } catch (err) {
      const code = err instanceof StreamfnError ? err.code : "INTERNAL";
      if ((code === "STREAM_INPUT_ENDED" || code === "STREAM_ENDED") && this.#live.get(e.key) === e) {
        // The stream's input ended between our check and the push: the message opens the key's next stream.
        this.#live.delete(e.key);
        this.#wake(e);
        return this.#deliver(e.key, ev);
      }
      this.counters.dropped++;
      this.#logLimited(code, { topic, streamId: h.streamId, code, err: (err as Error).message }, "message refused by the stream; dropped");
    }
    return undefined;
  }

  /** Opens the key's stream; a promise while the table has no slot (the source waits) or answers asynchronously. */
  #open(e: Entry): Promise<void> | undefined {
    const streamId = this.#freeId(e.key);
    const sink = this.#sinkFor(e, streamId);
    let opened: StreamHandle | Promise<StreamHandle>;
    try {
      opened = this.#table.open(this.functionName, streamId, sink);
    } catch (err) {
      return this.#openFailed(e, err);
    }
    if (opened instanceof Promise) return opened.then((h) => this.#bind(e, h), (err: unknown) => this.#openFailed(e, err));
    this.#bind(e, opened);
    return undefined;
  }

  #bind(e: Entry, h: StreamHandle): void {
    this.counters.streamsOpened++;
    e.handle = h;
    if (h.state === "done") {
      this.#live.delete(e.key);
    } else {
      this.#table.attachProducer(h, {
        pause: () => {
          e.paused = true;
        },
        resume: () => {
          e.paused = false;
          this.#wake(e);
        },
      });
    }
    this.#wake(e);
  }

  #openFailed(e: Entry, err: unknown): Promise<void> | undefined {
    const code = err instanceof StreamfnError ? err.code : "INTERNAL";
    if (code === "CAPACITY_EXCEEDED" && !this.#closed) {
      // No slot now: the source holds (as a producer would be refused and retry) rather than dropping the burst.
      const wait = Math.max(kCapacityRetryMs, (err as StreamfnError).retryAfterMs ?? 0);
      this.#logLimited("capacity", { key: e.key, retryAfterMs: wait }, "no capacity for a new stream; the source waits");
      return new Promise<void>((r) => setTimeout(r, wait)).then(() => this.#open(e));
    }
    // The message (and any waiting behind its open) is counted as dropped by its caller.
    this.#live.delete(e.key);
    this.#wake(e);
    this.#logLimited(`open:${code}`, { key: e.key, code, err: (err as Error).message }, "cannot open a stream for the message; dropped");
    return undefined;
  }

  #wake(e: Entry): void {
    const w = e.waiters;
    e.waiters = [];
    for (const cb of w) cb();
  }

  /**
   * The table's id for the key's next stream: the key itself, or `key~2`, `key~3`… while an
   * earlier burst's id is live or still remembered as ended (the table refuses a reused id
   * within its retention window, and a late event must not land in a new burst).
   */
  #freeId(key: string): string {
    let n = this.#bursts.get(key) ?? 1;
    for (;;) {
      const id = n === 1 ? key : `${key}~${n}`;
      if (!this.#table.get(this.functionName, id) && !this.#table.ended(this.functionName, id)) {
        this.#bursts.delete(key);
        if (this.#bursts.size >= kBurstMemory) this.#bursts.delete(this.#bursts.keys().next().value!);
        this.#bursts.set(key, n);
        return id;
      }
      n++;
    }
  }

  #sinkFor(e: Entry, streamId: string): OutputSink {
    const onEnd = (_record: EndRecord): void => {
      if (this.#live.get(e.key) === e) this.#live.delete(e.key);
      this.#wake(e);
    };
    const out = this.source.output;
    const link = this.#link;
    if (!out || !link) return { output: () => {}, end: onEnd };
    const topic = renderTopic(out.topic, streamId, e.key);
    const counters = this.counters;
    const fn = this.functionName;
    return {
      output(n, json, bytes) {
        counters.outputs++;
        link.publish(topic, json ?? bytes!, { qos: out.qos ?? 1, jetstream: out.jetstream === true, n, streamId, functionName: fn });
      },
      end: onEnd,
      backedUp: () => link.backedUp(),
      onceWritable: (cb) => link.onceWritable(cb),
    };
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
