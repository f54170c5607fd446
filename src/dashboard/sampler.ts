import type { SourceStatus } from "../connectors/connectors.js";
import type { FunctionPool } from "../instances/pool.js";
import { kLatencyBoundsMs, kStreamDurationBoundsMs } from "../metrics/metrics.js";
import type { FunctionTotals } from "../metrics/metrics.js";
import type { DeployedFunction } from "../registry/registry.js";
import type { StreamHandle } from "../router/stream-table.js";
import { liveRow } from "./recent-streams.js";
import type { RecentStreams, StreamRow } from "./recent-streams.js";

/** Where the sampler reads the server's state. */
export interface SamplerSource {
  functions(): Iterable<DeployedFunction>;
  liveStreams(): Iterable<StreamHandle>;
  totals(): Map<string, FunctionTotals>;
  recent: RecentStreams;
  watching(): boolean;
  /** The broker sources bound to functions (connectors), when the server has any. */
  sources?(): SourceStatus[];
}

/** One second of one function. Rates are per second over the interval since the sample before. */
export interface Sample {
  /** Epoch ms. */
  t: number;
  /** Instances not stopping (starting or ready). Null (here and below) marks a gap: nobody watched. */
  instances: number | null;
  live: number | null;
  waiting: number | null;
  eventsPerS: number | null;
  outputsPerS: number | null;
  /** Instances started during the interval. */
  coldStarts: number;
  /** Streams that failed during the interval. */
  failed: number;
  /** Per-event latency over the last `kLatencyWindow` samples, ms; null without outputs then. */
  p50Ms: number | null;
  p99Ms: number | null;
}

export interface VersionInfo {
  version: string;
  role: "current" | "retiring";
  live: number;
  instances: { id: number; state: string; streams: number; slots: number; coldStartMs: number | null }[];
}

/** What the page shows of one function besides its history. */
export interface FunctionInfo {
  name: string;
  version: string | null;
  options: FunctionPool["options"] | null;
  versions: VersionInfo[];
  totals: { opened: number; events: number; outputs: number; coldStarts: number };
  /** error code → failed streams since the server started. */
  failures: Record<string, number>;
  /** Streams ended since the server started, per bucket of `kDurationBoundsMs` (the last: longer). */
  durations: number[];
}

export interface Tick {
  now: number;
  process: { uptimeS: number; rssBytes: number; watching: boolean };
  functions: FunctionInfo[];
  samples: Record<string, Sample>;
  /** Live streams first (newest opened first), then ended ones (newest ended first). */
  streams: StreamRow[];
  liveTotal: number;
  /** Each broker source: connected or not, messages in, parse failures, streams opened. */
  sources: SourceStatus[];
}

export interface SamplerOptions {
  intervalMs?: number;
  /** Samples kept per function. Default 600 (10 min at 1 s). */
  historyLength?: number;
  /** Rows of each kind (live, ended) in a tick. Default 100. */
  maxRows?: number;
}

/** Samples that the latency percentiles span. */
const kLatencyWindow = 10;

interface Series {
  samples: Sample[];
  /** Cumulative latency buckets at each sample, aligned with `samples` (for windowed percentiles). */
  latency: number[][];
}

/**
 * The dashboard's one sampler, shared by every viewer: once a second it reads the registry,
 * the live streams and the metrics' totals, appends one sample per function to a bounded
 * history and hands the same tick (serialized once by the feed) to every viewer. It runs only
 * while someone watches (`start`/`stop` by the feed); the history stays, with a gap.
 */
export class DashboardSampler {
  readonly intervalMs: number;
  readonly historyLength: number;
  readonly maxRows: number;
  readonly #source: SamplerSource;
  readonly #series = new Map<string, Series>();
  #previous: { t: number; totals: Map<string, FunctionTotals> } | undefined;
  #timer: NodeJS.Timeout | undefined;
  #onTick: ((tick: Tick) => void) | undefined;
  #last: Tick | undefined;
  /** Wall time spent in `sample()`, for the operations doc's cost figure. */
  readonly cost = { ticks: 0, totalMs: 0 };

  constructor(source: SamplerSource, options: SamplerOptions = {}) {
    this.#source = source;
    this.intervalMs = options.intervalMs ?? 1000;
    this.historyLength = options.historyLength ?? 600;
    this.maxRows = options.maxRows ?? 100;
  }

  get running(): boolean {
    return this.#timer !== undefined;
  }

  /** Starts ticking; each tick goes to `onTick`. The first tick is taken now. */
  start(onTick: (tick: Tick) => void): void {
    if (this.#timer) return;
    this.#onTick = onTick;
    // A restart after a pause marks the gap, so no line is drawn across the time nobody watched.
    if (this.#previous) {
      for (const s of this.#series.values()) {
        const last = s.samples[s.samples.length - 1];
        if (last) this.#push(s, gapSample(Date.now()), s.latency[s.latency.length - 1]!);
      }
    }
    this.#previous = undefined;
    this.#last = this.sample();
    this.#timer = setInterval(() => {
      this.#last = this.sample();
      this.#onTick?.(this.#last);
    }, this.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#onTick = undefined;
  }

  /** The latest tick (taken at start or on the last interval). */
  get last(): Tick | undefined {
    return this.#last;
  }

  /** Every function's kept samples, oldest first. */
  history(): Record<string, Sample[]> {
    const out: Record<string, Sample[]> = {};
    for (const [fn, s] of this.#series) out[fn] = s.samples;
    return out;
  }

  /** Reads the state now and appends one sample per function. */
  sample(): Tick {
    const started = performance.now();
    const now = Date.now();
    const totals = this.#source.totals();
    const counts = new Map<string, { live: number; waiting: number; byVersion: Map<string, number> }>();
    const live: StreamRow[] = [];
    /** Once trimmed, the oldest open time kept: older streams cannot make the cut. */
    let floor = -Infinity;
    let liveTotal = 0;
    for (const s of this.#source.liveStreams()) {
      liveTotal++;
      let c = counts.get(s.functionName);
      if (!c) counts.set(s.functionName, (c = { live: 0, waiting: 0, byVersion: new Map() }));
      c.live++;
      if (s.state === "waiting") c.waiting++;
      c.byVersion.set(s.version, (c.byVersion.get(s.version) ?? 0) + 1);
      // Only the newest rows are sent; the candidates stay bounded while scanning.
      if (s.openedAt > floor) {
        live.push(liveRow(s));
        if (live.length >= this.maxRows * 2) {
          trimNewest(live, this.maxRows);
          floor = live[live.length - 1]!.openedAt;
        }
      }
    }
    trimNewest(live, this.maxRows);
    const prev = this.#previous;
    const seconds = prev ? Math.max(0.001, (now - prev.t) / 1000) : 1;
    const functions: FunctionInfo[] = [];
    const samples: Record<string, Sample> = {};
    for (const fn of this.#source.functions()) {
      const t = totals.get(fn.name) ?? emptyTotals();
      const p = prev?.totals.get(fn.name);
      const c = counts.get(fn.name);
      const pools: [FunctionPool, "current" | "retiring"][] = [];
      if (fn.current) pools.push([fn.current, "current"]);
      for (const pool of fn.retiring) pools.push([pool, "retiring"]);
      let instances = 0;
      const versions = pools.map(([pool, role]): VersionInfo => {
        const list = [...pool.instances].map((i) => ({
          id: i.id,
          state: i.state,
          streams: i.tenants.size,
          slots: i.concurrency,
          coldStartMs: i.coldStartMs === undefined ? null : Math.round(i.coldStartMs * 10) / 10,
        }));
        for (const i of list) if (i.state === "starting" || i.state === "ready") instances++;
        return { version: pool.version, role, live: c?.byVersion.get(pool.version) ?? 0, instances: list };
      });
      let series = this.#series.get(fn.name);
      if (!series) this.#series.set(fn.name, (series = { samples: [], latency: [] }));
      const windowStart = series.latency[Math.max(0, series.latency.length - kLatencyWindow)];
      const latencyWindow = diff(t.latency, windowStart ?? p?.latency);
      const sample: Sample = {
        t: now,
        instances,
        live: c?.live ?? 0,
        waiting: c?.waiting ?? 0,
        eventsPerS: p ? round((t.events - p.events) / seconds) : 0,
        outputsPerS: p ? round((t.outputs - p.outputs) / seconds) : 0,
        coldStarts: p ? t.coldStarts - p.coldStarts : 0,
        failed: p ? sum(t.failed) - sum(p.failed) : 0,
        p50Ms: quantile(latencyWindow, kLatencyBoundsMs, 0.5),
        p99Ms: quantile(latencyWindow, kLatencyBoundsMs, 0.99),
      };
      this.#push(series, sample, t.latency);
      samples[fn.name] = sample;
      functions.push({
        name: fn.name,
        version: fn.current?.version ?? null,
        options: fn.current?.options ?? null,
        versions,
        totals: { opened: t.opened, events: t.events, outputs: t.outputs, coldStarts: t.coldStarts },
        failures: t.failed,
        durations: t.duration,
      });
    }
    this.#previous = { t: now, totals };
    const tick: Tick = {
      now,
      process: { uptimeS: Math.round(process.uptime()), rssBytes: process.memoryUsage.rss(), watching: this.#source.watching() },
      functions,
      samples,
      streams: [...live, ...this.#source.recent.newest(this.maxRows)],
      liveTotal,
      sources: this.#source.sources?.() ?? [],
    };
    this.cost.ticks++;
    this.cost.totalMs += performance.now() - started;
    return tick;
  }

  #push(series: Series, sample: Sample, latency: number[]): void {
    series.samples.push(sample);
    series.latency.push(latency);
    if (series.samples.length > this.historyLength) {
      series.samples.shift();
      series.latency.shift();
    }
  }
}

export const kDurationBoundsMs = kStreamDurationBoundsMs;

function gapSample(t: number): Sample {
  // Nulls make the chart break its lines here.
  return { t, instances: null, live: null, waiting: null, eventsPerS: null, outputsPerS: null, coldStarts: 0, failed: 0, p50Ms: null, p99Ms: null };
}

function emptyTotals(): FunctionTotals {
  return { opened: 0, events: 0, outputs: 0, coldStarts: 0, failed: {}, latency: [], duration: [] };
}

/** Newest opened first, at most `n`. */
function trimNewest(rows: StreamRow[], n: number): void {
  rows.sort((a, b) => b.openedAt - a.openedAt);
  rows.length = Math.min(rows.length, n);
}

function diff(now: readonly number[], before: readonly number[] | undefined): number[] {
  return now.map((v, i) => v - (before?.[i] ?? 0));
}

function sum(counts: Record<string, number>): number {
  let n = 0;
  for (const v of Object.values(counts)) n += v;
  return n;
}

function round(v: number): number {
  return Math.round(v * 10) / 10;
}

/**
 * The `q` quantile of per-bucket counts, interpolated linearly inside its bucket (as
 * Prometheus' histogram_quantile does); above the last bound it answers the last bound.
 */
export function quantile(counts: readonly number[], bounds: readonly number[], q: number): number | null {
  let total = 0;
  for (const c of counts) total += c;
  if (total <= 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i]!;
    if (c > 0 && seen + c >= rank) {
      if (i >= bounds.length) return bounds[bounds.length - 1]!;
      const lo = i === 0 ? 0 : bounds[i - 1]!;
      const hi = bounds[i]!;
      return Math.round((lo + (hi - lo) * ((rank - seen) / c)) * 1000) / 1000;
    }
    seen += c;
  }
  return bounds[bounds.length - 1]!;
}
