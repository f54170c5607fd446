import type { BrokerKind } from "./topics.js";

/** One message from a broker, as a source binding takes it. */
export interface InboundMessage {
  topic: string;
  payload: Uint8Array;
  /** The `seq` MQTT 5 user property or NATS header, when the message carries one. */
  seq: number | undefined;
}

/**
 * What a subscriber answers for a message: nothing when it is taken, or a promise while the
 * message waits (its stream's inbox is full, or its stream is opening). The link does not
 * take the next message before it settles: MQTT stops acknowledging and reading, NATS
 * queues (bounded) and then drops, counted.
 */
export type MessageHandler = (msg: InboundMessage) => Promise<void> | undefined;

/** How outputs are published (see StreamSource.output). */
export interface PublishOptions {
  qos: 0 | 1;
  jetstream: boolean;
  /** The output's number and stream, sent as MQTT 5 user properties or NATS headers. */
  n: number;
  streamId: string;
  functionName: string;
}

/** The state of a link, for /v1/status, /metrics and the dashboard. */
export interface LinkStatus {
  broker: BrokerKind;
  /** The broker's URL without credentials. */
  url: string;
  connected: boolean;
  reconnects: number;
  /** The last disconnection: when it began and how long it lasted (null while still disconnected). */
  lastGap: { from: string; ms: number | null } | null;
  /** Outputs published and not yet acknowledged by the broker. */
  pendingPublishes: number;
  published: number;
  publishFailures: number;
}

/** A connection to one broker, shared by every source bound to it. */
export interface BrokerLink {
  readonly kind: BrokerKind;
  readonly url: string;
  readonly connected: boolean;
  /** Subscribes; resolves once the broker confirmed it. The returned function unsubscribes. */
  /** `onDrop`: called for a message the link had to drop (NATS, past its queue's bound). */
  subscribe(filter: string, qos: 0 | 1, handler: MessageHandler, onDrop?: () => void): Promise<() => void>;
  publish(topic: string, payload: string | Uint8Array, options: PublishOptions): void;
  /** True while too many publishes wait for the broker: the stream's handler is then held. */
  backedUp(): boolean;
  onceWritable(cb: () => void): void;
  status(): LinkStatus;
  close(): Promise<void>;
}

/** The broker URL as shown in logs and status: no user or password. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    return u.toString().replace(/\/$/, "");
  } catch {
    return url.replace(/\/\/[^@/]*@/, "//");
  }
}

/** A seq value from a property or header: a positive safe integer, or undefined. */
export function parseSeqText(v: unknown): number | undefined {
  if (typeof v !== "string" || !/^[1-9]\d{0,15}$/.test(v)) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Publishes waiting for the broker before outputs hold their handler. */
export const kMaxPendingPublishes = 256;

/** Counts publishes in flight and wakes writers when the count falls back. */
export class PublishWindow {
  pending = 0;
  published = 0;
  failures = 0;
  #waiters: (() => void)[] = [];

  begin(): void {
    this.pending++;
  }

  done(ok: boolean): void {
    this.pending--;
    if (ok) this.published++;
    else this.failures++;
    if (this.pending < kMaxPendingPublishes >> 1 && this.#waiters.length > 0) {
      const w = this.#waiters;
      this.#waiters = [];
      for (const cb of w) cb();
    }
  }

  get full(): boolean {
    return this.pending >= kMaxPendingPublishes;
  }

  onceWritable(cb: () => void): void {
    if (!this.full) queueMicrotask(cb);
    else this.#waiters.push(cb);
  }
}

/** Tracks disconnections for status and the reconnect log line. */
export class GapClock {
  reconnects = 0;
  #from: number | undefined;
  #last: { from: number; ms: number | null } | undefined;

  down(): void {
    if (this.#from !== undefined) return;
    this.#from = Date.now();
    this.#last = { from: this.#from, ms: null };
  }

  get isDown(): boolean {
    return this.#from !== undefined;
  }

  /** Back up: the gap in ms, or undefined when it was not down. */
  up(): number | undefined {
    if (this.#from === undefined) return undefined;
    const ms = Date.now() - this.#from;
    this.#last = { from: this.#from, ms };
    this.#from = undefined;
    this.reconnects++;
    return ms;
  }

  get last(): LinkStatus["lastGap"] {
    return this.#last ? { from: new Date(this.#last.from).toISOString(), ms: this.#last.ms } : null;
  }
}

/** A link's status from the parts every link keeps: its gap clock and its publish window. */
export function linkStatus(broker: BrokerKind, url: string, connected: boolean, gaps: GapClock, window: PublishWindow): LinkStatus {
  return {
    broker,
    url,
    connected,
    reconnects: gaps.reconnects,
    lastGap: gaps.last,
    pendingPublishes: window.pending,
    published: window.published,
    publishFailures: window.failures,
  };
}
