import type { RouterObserver } from "../router/router.js";
import type { EndRecord, Stream } from "../router/stream.js";
import type { StreamHandle } from "../router/stream-table.js";

/** One row of the dashboard's stream table. Times are epoch ms. */
export interface StreamRow {
  fn: string;
  id: string;
  version: string;
  state: "waiting" | "running" | "completed" | "failed";
  openedAt: number;
  endedAt: number | null;
  events: number;
  outputs: number;
  /** The end reason once ended; the input's end reason while live (null until it ends). */
  reason: string | null;
  /** A failed stream's error code. */
  code: string | null;
  instance: number | null;
  start: "cold" | "warm" | null;
}

/**
 * The last streams that ended, newest last, whatever the ended-stream memory keeps: a
 * router observer that copies a few fields per stream end (never per event) into a ring.
 * Reading the ended-stream memory each second instead would copy all of it (up to 100 000).
 */
export class RecentStreams implements Pick<RouterObserver, "streamClosed"> {
  readonly #ring: (StreamRow | undefined)[];
  #next = 0;
  #size = 0;

  constructor(readonly max = 500) {
    this.#ring = new Array<StreamRow | undefined>(max);
  }

  streamClosed(stream: Stream, record: EndRecord): void {
    this.#ring[this.#next] = {
      fn: stream.functionName,
      id: stream.streamId,
      version: stream.version,
      state: record.status,
      openedAt: stream.openedAt,
      endedAt: Date.now(),
      events: record.events,
      outputs: record.outputs,
      reason: record.reason,
      code: record.error?.code ?? null,
      instance: stream.instanceId ?? null,
      start: stream.boundAt === undefined ? null : stream.cold ? "cold" : "warm",
    };
    this.#next = (this.#next + 1) % this.max;
    if (this.#size < this.max) this.#size++;
  }

  /** Up to `limit` ended streams, newest first. */
  newest(limit: number): StreamRow[] {
    const out: StreamRow[] = [];
    for (let i = 1; i <= Math.min(limit, this.#size); i++) out.push(this.#ring[(this.#next - i + this.max) % this.max]!);
    return out;
  }
}

/** A live stream as a row. */
export function liveRow(s: StreamHandle): StreamRow {
  return {
    fn: s.functionName,
    id: s.streamId,
    version: s.version,
    state: s.state === "waiting" ? "waiting" : "running",
    openedAt: s.openedAt,
    endedAt: null,
    events: s.events,
    outputs: s.outputs,
    reason: s.inputEnd ?? null,
    code: null,
    instance: s.instanceId ?? null,
    start: s.boundAt === undefined || s.cold === undefined ? null : s.cold ? "cold" : "warm",
  };
}
