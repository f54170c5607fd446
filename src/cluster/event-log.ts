import { headers as natsHeaders } from "@nats-io/transport-node";
import type { MsgHdrs, Subscription } from "@nats-io/transport-node";
import { AckedPublisher, kMsgIdHeader } from "./acked-publish.js";
import { StreamfnError } from "../api/errors.js";
import type { Cluster } from "./ensure-cluster.js";
import { eventSubject } from "./names.js";
import { clusterError } from "./nats-errors.js";
import { lastOnSubject, readSubject } from "./direct-read.js";
import { Window } from "./window.js";

/** Header carrying an event's position in its stream (1, 2, 3…): our own dedup and order key. */
export const kPositionHeader = "Sfn-Pos";

export interface StoredEvent {
  position: number;
  /** Stream sequence in SFN_EVENTS (0 for an event seen live, before it was read back). */
  seq: number;
  data: Uint8Array;
  headers: MsgHdrs | undefined;
}

export interface AppendResult {
  seq: number;
  /** The server had this message id already (a retry inside the duplicate window). */
  duplicate: boolean;
}

export interface EventLogOptions {
  /** Appends awaiting their ack at once, over all streams (backpressure beyond it). */
  maxInFlight?: number;
  /** How long one publish waits for its ack before it is retried (same message id). */
  ackTimeoutMs?: number;
  /** Tries per append before it fails with CLUSTER_ERROR. */
  attempts?: number;
}

export function positionOf(h: MsgHdrs | undefined): number | undefined {
  const v = h?.get(kPositionHeader);
  if (!v) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/**
 * The events of all streams: one subject per stream in SFN_EVENTS. Gateways append; the
 * owning worker follows a stream live (core subscription) and reads it back by direct get.
 */
export class EventLog {
  readonly #cluster: Cluster;
  readonly #publisher: AckedPublisher;
  readonly #window: Window;
  readonly #attempts: number;

  constructor(cluster: Cluster, options: EventLogOptions = {}) {
    this.#cluster = cluster;
    this.#publisher = new AckedPublisher(cluster.nc, options.ackTimeoutMs ?? 5_000);
    this.#window = new Window(options.maxInFlight ?? 1024);
    this.#attempts = options.attempts ?? 3;
  }

  get inFlight(): number {
    return this.#window.inFlight;
  }

  subject(fn: string, streamId: string): string {
    return eventSubject(this.#cluster.settings.names, fn, streamId);
  }

  /**
   * Appends one event at `position`. Resolves once the server has stored it; waits first for
   * room in the in-flight window. The message id `<fn>/<streamId>/<position>` makes a retry
   * (ours after a lost ack, or a producer's resend) a no-op inside the duplicate window.
   */
  async append(fn: string, streamId: string, position: number, data: Uint8Array, extra?: Record<string, string>): Promise<AppendResult> {
    if (!Number.isSafeInteger(position) || position < 1) {
      throw new StreamfnError("INVALID_SEQ", `event position must be a positive integer, got ${position}`);
    }
    const subject = this.subject(fn, streamId);
    const h = natsHeaders();
    h.set(kPositionHeader, String(position));
    if (extra) for (const [k, v] of Object.entries(extra)) h.set(k, v);
    h.set(kMsgIdHeader, `${fn}/${streamId}/${position}`);
    await this.#window.acquire();
    try {
      let last: unknown;
      for (let i = 0; i < this.#attempts; i++) {
        try {
          const ack = await this.#publisher.publish(subject, data, h);
          return { seq: ack.seq, duplicate: ack.duplicate };
        } catch (err) {
          last = err;
        }
      }
      throw clusterError(`cannot append event ${position} of stream ${streamId} (${fn})`, last);
    } finally {
      this.#window.release();
    }
  }

  /** A stream's stored events in stream order (not necessarily position order), after `afterSeq`. */
  async *read(fn: string, streamId: string, afterSeq = 0): AsyncGenerator<StoredEvent> {
    for await (const m of readSubject(this.#cluster.jsm, this.#cluster.settings.names.events, this.subject(fn, streamId), afterSeq)) {
      const position = positionOf(m.header);
      if (position === undefined) continue;
      yield { position, seq: m.seq, data: m.data, headers: m.header };
    }
  }

  /**
   * Live events of one stream as they are published (a core subscription: a message captured
   * by JetStream reaches core subscribers too). A publish the server then refuses (a
   * duplicate) is seen here as well: consumers dedup by position.
   */
  subscribe(fn: string, streamId: string, onEvent: (e: StoredEvent) => void): Subscription {
    return this.#cluster.nc.subscribe(this.subject(fn, streamId), {
      callback: (err, msg) => {
        if (err) return;
        const position = positionOf(msg.headers);
        if (position !== undefined) onEvent({ position, seq: 0, data: msg.data, headers: msg.headers });
      },
    });
  }

  /** The last event stored on the stream's subject (its position and headers), or null when none is. */
  async last(fn: string, streamId: string): Promise<StoredEvent | null> {
    const m = await lastOnSubject(this.#cluster.jsm, this.#cluster.settings.names.events, this.subject(fn, streamId));
    const position = m ? positionOf(m.header) : undefined;
    return m && position !== undefined ? { position, seq: m.seq, data: m.data, headers: m.header } : null;
  }

  /** Drops a completed stream's events: its subject leaves the server's subject index. */
  async purge(fn: string, streamId: string): Promise<number> {
    try {
      const r = await this.#cluster.jsm.streams.purge(this.#cluster.settings.names.events, { filter: this.subject(fn, streamId) });
      return r.purged;
    } catch (err) {
      throw clusterError(`cannot purge the events of stream ${streamId} (${fn})`, err);
    }
  }
}
