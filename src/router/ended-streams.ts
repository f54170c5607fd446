import type { EndRecord } from "./stream.js";

export interface EndedStream extends Omit<EndRecord, "type"> {
  endedAt: number;
}

/**
 * Recently ended streams, so a late event is refused with STREAM_ENDED instead of silently
 * starting a new stream under the same id. Bounded both in time and in count; a Map keeps
 * insertion order, so the oldest entries are always first to go.
 */
export class EndedStreams {
  readonly #entries = new Map<string, EndedStream>();

  constructor(
    readonly retentionMs: number,
    readonly max: number,
  ) {}

  add(key: string, info: EndedStream | (EndRecord & { endedAt: number })): void {
    const { type: _type, ...rest } = info as EndRecord & { endedAt: number };
    this.#entries.delete(key);
    this.#entries.set(key, rest);
    this.#evict(info.endedAt);
  }

  get(key: string): EndedStream | undefined {
    const e = this.#entries.get(key);
    if (!e) return undefined;
    if (Date.now() - e.endedAt > this.retentionMs) {
      this.#entries.delete(key);
      return undefined;
    }
    return e;
  }

  get size(): number {
    return this.#entries.size;
  }

  clear(): void {
    this.#entries.clear();
  }

  #evict(now: number): void {
    for (const [key, e] of this.#entries) {
      if (this.#entries.size <= this.max && now - e.endedAt <= this.retentionMs) break;
      this.#entries.delete(key);
    }
  }
}
