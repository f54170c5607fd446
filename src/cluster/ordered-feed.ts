import type { MsgHdrs, NatsConnection, Subscription } from "@nats-io/transport-node";
import type { JetStreamManager } from "@nats-io/jetstream";
import { StreamfnError } from "../api/errors.js";
import { lastOnSubject, readSubject } from "./direct-read.js";
import { onReconnect } from "./connect.js";

/** How soon a failed read of the store is tried again. */
const kReadRetryMs = 250;

export interface FeedRecord {
  position: number;
  seq: number;
  data: Uint8Array;
  headers: MsgHdrs | undefined;
}

export interface OrderedFeedOptions {
  nc: NatsConnection;
  jsm: JetStreamManager;
  stream: string;
  subject: string;
  /** The record's number on this subject; undefined for records that are not numbered (fences). */
  positionOf(h: MsgHdrs | undefined): number | undefined;
  /** The first position wanted (records below it are skipped). */
  from: number;
  onRecord(r: FeedRecord): void;
  /** A gap that did not fill in time, or a failed read: the feed has stopped. */
  onError(err: StreamfnError): void;
  /** How long a missing position may stay missing while later ones are seen. */
  gapTimeoutMs?: number;
  /** Out-of-order records held while waiting for a missing one. */
  maxPending?: number;
}

/**
 * Delivers a subject's records in position order, each once, from any position: live through a
 * core subscription, with everything before (and any gap) read back by direct get. Positions
 * are the writers' own numbers, so a record stored twice (a retry) or seen live and read back
 * is delivered once, and records stored out of order (a retried append landing after a later
 * one) are delivered in order.
 */
export class OrderedFeed {
  readonly #o: Required<Omit<OrderedFeedOptions, "gapTimeoutMs" | "maxPending">> & { gapTimeoutMs: number; maxPending: number };
  #next: number;
  #lastSeq = 0;
  readonly #pending = new Map<number, FeedRecord>();
  #sub: Subscription | undefined;
  #reading = false;
  #readAgain = false;
  /** A record came live: from it on the subscription delivers everything, reads only fill gaps. */
  #sawLive = false;
  #gapSince: number | undefined;
  /** Since when reads of the store have failed in a row (undefined: the last one worked). */
  #readFailingSince: number | undefined;
  #retry: NodeJS.Timeout | undefined;
  #closed = false;
  #offReconnect: (() => void) | undefined;

  constructor(options: OrderedFeedOptions) {
    this.#o = { gapTimeoutMs: 10_000, maxPending: 10_000, ...options };
    this.#next = options.from;
  }

  /** The next position the feed will deliver. */
  get next(): number {
    return this.#next;
  }

  /** Subscribes first (so nothing published from now on is missed), then reads back what came before. */
  start(): void {
    this.#sub = this.#o.nc.subscribe(this.#o.subject, {
      callback: (err, msg) => {
        if (err || this.#closed) return;
        const position = this.#o.positionOf(msg.headers);
        if (position === undefined) return;
        this.#sawLive = true;
        this.#take({ position, seq: 0, data: msg.data, headers: msg.headers });
        if (this.#pending.size > 0) this.#readBack();
      },
    });
    this.#offReconnect = onReconnect(this.#o.nc, () => this.catchUp());
    this.#readBack();
  }

  /**
   * Records stored while the connection was down never came live, and nothing later may come
   * to reveal the gap (the end record may be among them): ask the store. One read of the
   * subject's last record when nothing was missed; a read back from where reads left off when
   * something was.
   */
  catchUp(): void {
    if (this.#closed) return;
    void (async () => {
      try {
        const last = await lastOnSubject(this.#o.jsm, this.#o.stream, this.#o.subject);
        if (this.#closed || last === null) return;
        const position = this.#o.positionOf(last.header);
        if (position !== undefined && position < this.#next) return;
        this.#sawLive = false;
        this.#readBack();
      } catch {
        // Down again: the next reconnect asks again.
      }
    })();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#retry);
    this.#offReconnect?.();
    this.#sub?.unsubscribe();
    this.#pending.clear();
  }

  #take(r: FeedRecord): void {
    if (r.position < this.#next || this.#pending.has(r.position)) return;
    if (this.#pending.size >= this.#o.maxPending) {
      this.#fail(new StreamfnError("CLUSTER_ERROR", `${this.#o.subject}: more than ${this.#o.maxPending} records wait for position ${this.#next}`));
      return;
    }
    this.#pending.set(r.position, r);
    for (let p = this.#pending.get(this.#next); p !== undefined && !this.#closed; p = this.#pending.get(this.#next)) {
      this.#pending.delete(this.#next);
      this.#next++;
      this.#o.onRecord(p);
    }
    if (this.#pending.size === 0) this.#gapSince = undefined;
  }

  #readBack(): void {
    if (this.#closed) return;
    if (this.#reading) {
      this.#readAgain = true;
      return;
    }
    this.#reading = true;
    void (async () => {
      try {
        do {
          this.#readAgain = false;
          for await (const m of readSubject(this.#o.jsm, this.#o.stream, this.#o.subject, this.#lastSeq)) {
            if (this.#closed) return;
            this.#lastSeq = m.seq;
            const position = this.#o.positionOf(m.header);
            if (position !== undefined) this.#take({ position, seq: m.seq, data: m.data, headers: m.header });
            // Caught up with the live records: reading on would fetch each later record twice
            // (once live, once stored), chasing the head of a busy stream one request at a time.
            if (this.#sawLive && this.#pending.size === 0) break;
          }
        } while (this.#readAgain && !this.#closed && (!this.#sawLive || this.#pending.size > 0));
      } catch (err) {
        // A read fails when the connection drops under it (its request times out): that is no
        // reason to fail the stream. Read again shortly (the reconnect's catch-up may come
        // first); only reads that keep failing for the gap timeout fail the feed.
        const now = Date.now();
        this.#readFailingSince ??= now;
        if (now - this.#readFailingSince > this.#o.gapTimeoutMs) {
          this.#fail(err instanceof StreamfnError ? err : new StreamfnError("CLUSTER_ERROR", String(err)));
          return;
        }
        clearTimeout(this.#retry);
        this.#retry = setTimeout(() => this.#readBack(), kReadRetryMs);
        return;
      } finally {
        this.#reading = false;
      }
      this.#readFailingSince = undefined;
      this.#checkGap();
    })();
  }

  /**
   * Later positions are here but not the next one: it may still be on its way to the store (a
   * live record can arrive before an earlier one is stored) or be retried by its writer. Read
   * again a little later, and give up after the gap timeout.
   */
  #checkGap(): void {
    if (this.#closed || this.#pending.size === 0) return;
    const now = Date.now();
    this.#gapSince ??= now;
    if (now - this.#gapSince > this.#o.gapTimeoutMs) {
      this.#fail(new StreamfnError("CLUSTER_ERROR", `${this.#o.subject}: position ${this.#next} missing for ${this.#o.gapTimeoutMs} ms`));
      return;
    }
    clearTimeout(this.#retry);
    this.#retry = setTimeout(() => this.#readBack(), 50);
  }

  #fail(err: StreamfnError): void {
    if (this.#closed) return;
    this.close();
    this.#o.onError(err);
  }
}
