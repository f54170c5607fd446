import { StreamfnError } from "../api/errors.js";
import type { StreamHandle, StreamTable } from "../router/stream-table.js";

/** Limits of one client (a token or an address). 0 or absent: no limit. */
export interface RateLimits {
  /** New streams per second (WebSocket upgrades, NDJSON requests, first POSTed events). */
  streamsPerS?: number;
  /** Events per second, over all the client's streams. */
  eventsPerS?: number;
  /** Event bytes per second, over all the client's streams. */
  bytesPerS?: number;
  /** Streams open at once. */
  concurrentStreams?: number;
}

export type LimitName = keyof RateLimits;
export const kLimitNames: readonly LimitName[] = ["streamsPerS", "eventsPerS", "bytesPerS", "concurrentStreams"];

/**
 * Per-address limits of a server that other machines can reach, unless configured: generous
 * for one well-behaved client, a ceiling for one that floods. A loopback server has none.
 */
export const kExposedAddressLimits: Readonly<Required<RateLimits>> = Object.freeze({
  streamsPerS: 100,
  eventsPerS: 20_000,
  bytesPerS: 64 * 1024 * 1024,
  concurrentStreams: 1_000,
});

/** Client addresses tracked at once; past it the idlest is forgotten (bounded memory under a flood of addresses). */
export const kMaxAddressKeys = 10_000;

export function validateLimits(input: unknown, where: string): RateLimits {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    throw new StreamfnError("INVALID_OPTIONS", `${where} must be an object with ${kLimitNames.join(", ")}`);
  }
  const out: RateLimits = {};
  for (const [k, v] of Object.entries(input)) {
    if (!kLimitNames.includes(k as LimitName)) {
      throw new StreamfnError("INVALID_OPTIONS", `${where}: unknown limit "${k}" (known: ${kLimitNames.join(", ")})`);
    }
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
      throw new StreamfnError("INVALID_OPTIONS", `${where}: ${k} must be an integer >= 0 (0: no limit), got ${JSON.stringify(v)}`);
    }
    out[k as LimitName] = v;
  }
  return out;
}

/** Later layers win, key by key. */
export function mergeLimits(...layers: (RateLimits | undefined)[]): RateLimits {
  const out: RateLimits = {};
  for (const l of layers) if (l) for (const k of kLimitNames) if (l[k] !== undefined) out[k] = l[k];
  return out;
}

function anyLimit(l: RateLimits): boolean {
  return kLimitNames.some((k) => (l[k] ?? 0) > 0);
}

/**
 * A token bucket holding up to one second of `rate`. A take larger than the bucket (one event
 * bigger than a second of bytesPerS) passes on a full bucket and leaves it in debt, so no
 * size is refused for ever, only slowed.
 */
class Bucket {
  #tokens: number;
  #at: number;

  constructor(readonly rate: number, now: number) {
    this.#tokens = rate;
    this.#at = now;
  }

  #refill(now: number): void {
    if (now > this.#at) {
      this.#tokens = Math.min(this.rate, this.#tokens + ((now - this.#at) * this.rate) / 1000);
      this.#at = now;
    }
  }

  /** Ms until `n` can be taken; 0: now. */
  waitFor(n: number, now: number): number {
    this.#refill(now);
    const need = Math.min(n, this.rate);
    if (this.#tokens >= need) return 0;
    return Math.max(1, Math.ceil(((need - this.#tokens) * 1000) / this.rate));
  }

  take(n: number): void {
    this.#tokens -= n;
  }

  full(now: number): boolean {
    this.#refill(now);
    return this.#tokens >= this.rate;
  }
}

/** The buckets and open-stream count of one key. */
class Entry {
  readonly streams: Bucket | undefined;
  readonly events: Bucket | undefined;
  readonly bytes: Bucket | undefined;
  /** Streams this key opened that have not ended. */
  open = 0;

  constructor(readonly who: string, readonly limits: RateLimits, now: number) {
    this.streams = limits.streamsPerS ? new Bucket(limits.streamsPerS, now) : undefined;
    this.events = limits.eventsPerS ? new Bucket(limits.eventsPerS, now) : undefined;
    this.bytes = limits.bytesPerS ? new Bucket(limits.bytesPerS, now) : undefined;
  }

  /** Nothing to remember: forgetting it changes no decision. */
  idle(now: number): boolean {
    return this.open === 0 && (this.streams?.full(now) ?? true) && (this.events?.full(now) ?? true) && (this.bytes?.full(now) ?? true);
  }
}

/** Why a request or an event must wait: the limit's name (for the client) and how long. */
export interface OverLimit {
  limit: LimitName;
  waitMs: number;
  message: string;
}

export function rateLimitedError(over: OverLimit): StreamfnError {
  return new StreamfnError("RATE_LIMITED", over.message, { retryAfterMs: over.waitMs });
}

/** An open-stream count held for one stream; released once, when it ends (or never opened). */
export interface StreamLease {
  /** Releases the count when `stream` ends. */
  bind(stream: StreamHandle, table: StreamTable): void;
  release(): void;
}

const kNoLease: StreamLease = { bind() {}, release() {} };

/** Streams already counted (a POST of events that raced another to open the same stream). */
const kCounted = new WeakSet<StreamHandle>();

/**
 * The limits that apply to one request: its client address's and, with a token, the token's.
 * A request is let through only when every one of them allows it, and then charged to all.
 */
export class ClientLimits {
  constructor(
    readonly entries: readonly Entry[],
    /** Told of every refusal or pause, for the metrics. */
    readonly onOver: (limit: LimitName) => void = () => {},
  ) {}

  /** Admits a new stream or throws RATE_LIMITED (streamsPerS or concurrentStreams). */
  admitStream(): StreamLease {
    const now = performance.now();
    for (const e of this.entries) {
      const max = e.limits.concurrentStreams ?? 0;
      if (max > 0 && e.open >= max) {
        this.onOver("concurrentStreams");
        throw rateLimitedError({
          limit: "concurrentStreams",
          waitMs: 1000,
          message: `${e.who} already has ${e.open} open streams, its concurrentStreams limit; end one before opening another`,
        });
      }
      const wait = e.streams?.waitFor(1, now) ?? 0;
      if (wait > 0) {
        this.onOver("streamsPerS");
        throw rateLimitedError({
          limit: "streamsPerS",
          waitMs: wait,
          message: `${e.who} opens new streams faster than its streamsPerS limit (${e.limits.streamsPerS}/s); retry in ${wait} ms`,
        });
      }
    }
    for (const e of this.entries) {
      e.streams?.take(1);
      e.open++;
    }
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      for (const e of this.entries) e.open--;
    };
    return {
      release,
      bind(stream, table) {
        if (stream.state === "done" || kCounted.has(stream)) {
          release();
          return;
        }
        kCounted.add(stream);
        table.addSink(stream, { output() {}, end: release });
      },
    };
  }

  /** Charges events; returns undefined when taken, or what is over (nothing is charged then). */
  chargeEvents(count: number, bytes: number): OverLimit | undefined {
    const now = performance.now();
    for (const e of this.entries) {
      const we = e.events?.waitFor(count, now) ?? 0;
      if (we > 0) {
        this.onOver("eventsPerS");
        return { limit: "eventsPerS", waitMs: we, message: `${e.who} sends events faster than its eventsPerS limit (${e.limits.eventsPerS}/s); the server reads on in ${we} ms` };
      }
      const wb = e.bytes?.waitFor(bytes, now) ?? 0;
      if (wb > 0) {
        this.onOver("bytesPerS");
        return { limit: "bytesPerS", waitMs: wb, message: `${e.who} sends event bytes faster than its bytesPerS limit (${e.limits.bytesPerS}/s); the server reads on in ${wb} ms` };
      }
    }
    for (const e of this.entries) {
      e.events?.take(count);
      e.bytes?.take(bytes);
    }
    return undefined;
  }
}

export interface RateLimiterOptions {
  /** Per client address; nothing is tracked per address when no limit is set. */
  address: RateLimits;
  /** Per token name: its own limits, or the tokens' default. */
  token: (name: string) => RateLimits;
  maxAddressKeys?: number;
}

/**
 * The server's rate-limit state: one entry per token (a fixed set) and per client address
 * (bounded: past `maxAddressKeys` the least recently seen idle address is forgotten, and if
 * none is idle, the least recently seen one).
 */
export class RateLimiter {
  readonly #address: RateLimits | undefined;
  readonly #tokenLimits: (name: string) => RateLimits;
  readonly #addresses = new Map<string, Entry>();
  readonly #tokens = new Map<string, Entry | null>();
  readonly #maxAddressKeys: number;
  /** Refusals (new streams) and pauses (events, bytes) per limit since start. */
  readonly overLimit = new Map<LimitName, number>(kLimitNames.map((n) => [n, 0]));
  readonly #onOver = (limit: LimitName): void => {
    this.overLimit.set(limit, (this.overLimit.get(limit) ?? 0) + 1);
  };

  constructor(options: RateLimiterOptions) {
    this.#address = anyLimit(options.address) ? options.address : undefined;
    this.#tokenLimits = options.token;
    this.#maxAddressKeys = options.maxAddressKeys ?? kMaxAddressKeys;
  }

  /** Client addresses tracked now. */
  get addressKeys(): number {
    return this.#addresses.size;
  }

  /** The limits of a request from `address` carrying token `tokenName`; undefined when none apply. */
  forClient(address: string, tokenName: string | undefined): ClientLimits | undefined {
    const entries: Entry[] = [];
    if (this.#address) entries.push(this.#addressEntry(address, this.#address));
    if (tokenName !== undefined) {
      let e = this.#tokens.get(tokenName);
      if (e === undefined) {
        const limits = this.#tokenLimits(tokenName);
        e = anyLimit(limits) ? new Entry(`token "${tokenName}"`, limits, performance.now()) : null;
        this.#tokens.set(tokenName, e);
      }
      if (e) entries.push(e);
    }
    return entries.length === 0 ? undefined : new ClientLimits(entries, this.#onOver);
  }

  #addressEntry(address: string, limits: RateLimits): Entry {
    const now = performance.now();
    const known = this.#addresses.get(address);
    if (known) {
      // Map order is the recency order the eviction below walks.
      this.#addresses.delete(address);
      this.#addresses.set(address, known);
      return known;
    }
    if (this.#addresses.size >= this.#maxAddressKeys) this.#evict(now);
    const e = new Entry(`client address ${address}`, limits, now);
    this.#addresses.set(address, e);
    return e;
  }

  #evict(now: number): void {
    // Idle entries are forgotten without changing any decision; look at the oldest few hundred.
    let scanned = 0;
    for (const [key, e] of this.#addresses) {
      if (e.idle(now)) {
        this.#addresses.delete(key);
        return;
      }
      if (++scanned >= 256) break;
    }
    const oldest = this.#addresses.keys().next();
    if (!oldest.done) this.#addresses.delete(oldest.value);
  }
}

export { kNoLease };
