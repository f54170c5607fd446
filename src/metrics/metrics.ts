import type { Counter, Gauge, Registry as PromRegistry } from "prom-client";
import type { Instance } from "../instances/instance.js";
import type { FunctionPool, PoolObserver } from "../instances/pool.js";
import type { SandboxExit } from "../instances/sandbox.js";
import type { DeployedFunction } from "../registry/registry.js";
import type { RouterObserver } from "../router/router.js";
import type { EndRecord, Stream } from "../router/stream.js";
import type { StreamHandle } from "../router/stream-table.js";
import { importModule } from "../runtime/import-module.js";
import { BucketHistogram, HistogramFamily } from "./bucket-histogram.js";

/** Where the metrics read the state their gauges mirror, at scrape time. */
export interface MetricsSource {
  /** Open streams: running, or waiting for a slot. */
  liveStreams(): Iterable<StreamHandle>;
  /** Deployed functions, with their current and retiring versions. */
  functions(): Iterable<DeployedFunction>;
}

// Bucket bounds in milliseconds (exported in seconds).
const kLatencyBoundsMs = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000];
const kStreamDurationBoundsMs = [10, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 120_000, 300_000, 600_000];
const kColdStartBoundsMs = [5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000];
const kWaitBoundsMs = [1, 5, 10, 50, 100, 500, 1_000, 5_000, 10_000, 30_000];

const kInstanceStates = ["starting", "ready", "stopping"] as const;

/** Everything counted for one function, across its versions. Plain numbers: the hot path only adds. */
class FunctionCounters {
  opened = 0;
  startedCold = 0;
  startedWarm = 0;
  /** Events, retries dropped and outputs of streams that have ended (live ones are summed at scrape). */
  endedEvents = 0;
  endedDuplicates = 0;
  endedOutputs = 0;
  coldStarts = 0;
  /** `status reason` → streams. */
  readonly closed = new Map<string, number>();
  /** error code → streams refused at open (capacity, busy or ended id, shutting down). */
  readonly refused = new Map<string, number>();
  /** error code → failed streams. */
  readonly failed = new Map<string, number>();
  /** exit code → instances that went away on their own (crash, out of memory, unresponsive). */
  readonly instanceExits = new Map<string, number>();
  readonly latency = new BucketHistogram(kLatencyBoundsMs);
  readonly duration = new BucketHistogram(kStreamDurationBoundsMs);
  readonly coldStart = new BucketHistogram(kColdStartBoundsMs);
  readonly wait = new BucketHistogram(kWaitBoundsMs);
}

/**
 * One function's running totals since the server started, as plain numbers (copies): what
 * the dashboard's sampler turns into rates and windowed distributions.
 */
export interface FunctionTotals {
  opened: number;
  events: number;
  outputs: number;
  coldStarts: number;
  /** error code → failed streams. */
  failed: Record<string, number>;
  /** Per bucket of `kLatencyBoundsMs` (not cumulative; the last counts values above every bound). */
  latency: number[];
  /** Per bucket of `kStreamDurationBoundsMs`, likewise. */
  duration: number[];
}

export { kLatencyBoundsMs, kStreamDurationBoundsMs };

/** The state gauges mirror, read once per scrape. */
interface FunctionSnapshot {
  live: number;
  queued: number;
  liveEvents: number;
  liveDuplicates: number;
  liveOutputs: number;
  instances: Record<(typeof kInstanceStates)[number], number>;
  slotsInUse: number;
  slotsTotal: number;
  versions: { version: string; role: "current" | "retiring" }[];
}

/** prom-client's default exposition format (its Registry.PROMETHEUS_CONTENT_TYPE). */
const kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

/**
 * The Prometheus metrics of one server, in a prom-client Registry of its own (several servers
 * may share a process). Per-event work is a few integer additions and one histogram bucket per
 * output; gauges, and counters the router already keeps per stream, are read at scrape time.
 */
export class StreamfnMetrics {
  #registry: PromRegistry | undefined;
  #loading: Promise<PromRegistry> | undefined;
  readonly #source: MetricsSource;
  readonly #counters = new Map<string, FunctionCounters>();
  /** Set for the duration of one scrape so every collect() reads the same state. */
  readonly #extensions: ((registry: PromRegistry) => void | Promise<void>)[] = [];
  #snapshot: Map<string, FunctionSnapshot> | undefined;

  /** Calls the router makes; hand them to the Router (composed with any other observer). */
  readonly routerObserver: Required<Pick<RouterObserver, "streamOpened" | "streamBound" | "streamClosed" | "outputOut" | "openRefused">>;
  /** Calls the pools make; hand them to the Registry. */
  readonly poolObserver: Required<PoolObserver>;

  constructor(source: MetricsSource) {
    this.#source = source;
    this.routerObserver = {
      streamOpened: (stream) => {
        this.#of(stream.functionName).opened++;
      },
      streamBound: (stream, waitedMs) => {
        const c = this.#of(stream.functionName);
        if (stream.cold) c.startedCold++;
        else c.startedWarm++;
        c.wait.observe(waitedMs);
      },
      streamClosed: (stream, record) => this.#closed(stream, record),
      outputOut: (stream, latencyMs) => {
        if (latencyMs !== undefined) this.#of(stream.functionName).latency.observe(latencyMs);
      },
      openRefused: (functionName, code) => {
        // Unknown names are not counted: any client could otherwise mint label values at will.
        if (code === "FUNCTION_NOT_FOUND" || code === "INVALID_STREAM_ID") return;
        const c = this.#of(functionName);
        c.refused.set(code, (c.refused.get(code) ?? 0) + 1);
      },
    };
    this.poolObserver = {
      coldStart: (pool, ms) => {
        const c = this.#of(pool.functionName);
        c.coldStarts++;
        c.coldStart.observe(ms);
      },
      instanceGone: (pool: FunctionPool, _instance: Instance, exit: SandboxExit | undefined) => {
        if (!exit) return;
        const c = this.#of(pool.functionName);
        c.instanceExits.set(exit.code, (c.instanceExits.get(exit.code) ?? 0) + 1);
      },
    };
  }

  /**
   * The prom-client registry with every metric, made on first use: the counters above are kept
   * without it, and loading prom-client is a good part of a server's start-up, so a server loads
   * it after it started (see `loadSoon`) or at the first scrape, whichever comes first.
   */
  load(): Promise<PromRegistry> {
    this.#loading ??= importModule<typeof import("prom-client")>("prom-client").then(async (prom) => {
      const registry = new prom.Registry();
      // The event-loop delay histogram samples on a timer. prom-client's default, every 10 ms,
      // wakes an idle server 100 times a second (~1% of a core here), against scale to zero's
      // "no instances, no work"; once a second keeps the metric and costs ~0.01%.
      prom.collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 1000 });
      this.#register(prom, registry);
      for (const extend of this.#extensions) await extend(registry);
      this.#registry = registry;
      return registry;
    });
    return this.#loading;
  }

  /**
   * Metrics of other parts (rate limits, connectors) join the registry when it loads, so they
   * do not pull prom-client onto the start-up path either. `extend` may import lazily.
   */
  extend(extend: (registry: PromRegistry) => void | Promise<void>): void {
    this.#extensions.push(extend);
    if (this.#registry) void extend(this.#registry);
  }

  /** Loads the registry in `ms`, off the start-up's path (the timer does not hold the process). */
  loadSoon(ms: number): void {
    if (this.#loading) return;
    setTimeout(() => void this.load(), ms).unref();
  }

  /** The registry, once loaded (after `load()` resolved). */
  get registry(): PromRegistry {
    if (!this.#registry) throw new Error("the metrics registry is not loaded yet (await load())");
    return this.#registry;
  }

  get contentType(): string {
    return this.#registry?.contentType ?? kPrometheusContentType;
  }

  /** The Prometheus text exposition of every metric. */
  async render(): Promise<string> {
    const registry = await this.load();
    this.#snapshot = this.#read();
    try {
      return await registry.metrics();
    } finally {
      this.#snapshot = undefined;
    }
  }

  /** Every function's totals (see FunctionTotals), read now: one pass over the live streams. */
  totals(): Map<string, FunctionTotals> {
    const snap = this.#read();
    const out = new Map<string, FunctionTotals>();
    for (const [fn, c] of this.#counters) {
      const s = snap.get(fn);
      out.set(fn, {
        opened: c.opened,
        events: c.endedEvents + (s?.liveEvents ?? 0),
        outputs: c.endedOutputs + (s?.liveOutputs ?? 0),
        coldStarts: c.coldStarts,
        failed: Object.fromEntries(c.failed),
        latency: Array.from(c.latency.counts),
        duration: Array.from(c.duration.counts),
      });
    }
    return out;
  }

  /** Instances of `functionName` started since this server started, over every version. */
  coldStarts(functionName: string): number {
    return this.#counters.get(functionName)?.coldStarts ?? 0;
  }

  #of(functionName: string): FunctionCounters {
    let c = this.#counters.get(functionName);
    if (c === undefined) {
      c = new FunctionCounters();
      this.#counters.set(functionName, c);
    }
    return c;
  }

  #closed(stream: Stream, record: EndRecord): void {
    const c = this.#of(stream.functionName);
    c.endedEvents += stream.events;
    c.endedDuplicates += stream.duplicates;
    c.endedOutputs += stream.outputs;
    const key = `${record.status} ${record.reason}`;
    c.closed.set(key, (c.closed.get(key) ?? 0) + 1);
    if (record.error) c.failed.set(record.error.code, (c.failed.get(record.error.code) ?? 0) + 1);
    c.duration.observe(Date.now() - stream.openedAt);
  }

  #read(): Map<string, FunctionSnapshot> {
    const snap = new Map<string, FunctionSnapshot>();
    const of = (name: string): FunctionSnapshot => {
      let s = snap.get(name);
      if (s === undefined) {
        s = {
          live: 0,
          queued: 0,
          liveEvents: 0,
          liveDuplicates: 0,
          liveOutputs: 0,
          instances: { starting: 0, ready: 0, stopping: 0 },
          slotsInUse: 0,
          slotsTotal: 0,
          versions: [],
        };
        snap.set(name, s);
        this.#of(name);
      }
      return s;
    };
    for (const fn of this.#source.functions()) {
      const s = of(fn.name);
      const pools: [FunctionPool, "current" | "retiring"][] = [];
      if (fn.current) pools.push([fn.current, "current"]);
      for (const p of fn.retiring) pools.push([p, "retiring"]);
      for (const [pool, role] of pools) {
        s.versions.push({ version: pool.version, role });
        for (const i of pool.instances) {
          if (i.state !== "stopped") s.instances[i.state]++;
          s.slotsInUse += i.tenants.size;
          s.slotsTotal += i.concurrency;
        }
      }
    }
    for (const stream of this.#source.liveStreams()) {
      const s = of(stream.functionName);
      s.live++;
      if (stream.state === "waiting") s.queued++;
      s.liveEvents += stream.events;
      s.liveDuplicates += stream.duplicates;
      s.liveOutputs += stream.outputs;
    }
    return snap;
  }

  /** The scrape's snapshot; reading one also gives newly deployed functions their (zero) counters. */
  #current(): Map<string, FunctionSnapshot> {
    return this.#snapshot ?? this.#read();
  }

  #register(prom: typeof import("prom-client"), registry: PromRegistry): void {
    const { Counter, Gauge } = prom;
    const registers = [registry];
    const fnLabel = ["function"] as const;

    const gauge = (name: string, help: string, value: (s: FunctionSnapshot) => number): void => {
      const g: Gauge<"function"> = new Gauge({
        name,
        help,
        labelNames: fnLabel,
        registers,
        collect: () => {
          g.reset();
          for (const [fn, s] of this.#current()) g.set({ function: fn }, value(s));
        },
      });
    };
    gauge("streamfn_streams_live", "Open streams (running or waiting for a slot).", (s) => s.live);
    gauge("streamfn_streams_queued", "Streams waiting for a free slot.", (s) => s.queued);
    gauge("streamfn_slots_in_use", "Instance slots holding a stream, over every version.", (s) => s.slotsInUse);
    gauge("streamfn_slots_total", "Instance slots, over every version.", (s) => s.slotsTotal);

    const instances: Gauge<"function" | "state"> = new Gauge({
      name: "streamfn_instances",
      help: "Instances by state (starting, ready, stopping), over every version.",
      labelNames: ["function", "state"],
      registers,
      collect: () => {
        instances.reset();
        for (const [fn, s] of this.#current()) {
          for (const state of kInstanceStates) instances.set({ function: fn, state }, s.instances[state]);
        }
      },
    });
    const versions: Gauge<"function" | "version" | "role"> = new Gauge({
      name: "streamfn_function_version_info",
      help: "1 for each deployed version: role current (takes new streams) or retiring (finishing its streams).",
      labelNames: ["function", "version", "role"],
      registers,
      collect: () => {
        versions.reset();
        for (const [fn, s] of this.#current()) {
          for (const v of s.versions) versions.set({ function: fn, version: v.version, role: v.role }, 1);
        }
      },
    });

    // Counters: totals live in FunctionCounters (and, for live streams, in the streams
    // themselves); each scrape re-states them.
    const counter = (name: string, help: string, value: (c: FunctionCounters, s: FunctionSnapshot | undefined) => number): void => {
      const m: Counter<"function"> = new Counter({
        name,
        help,
        labelNames: fnLabel,
        registers,
        collect: () => {
          m.reset();
          const snap = this.#current();
          for (const [fn, c] of this.#counters) m.inc({ function: fn }, value(c, snap.get(fn)));
        },
      });
    };
    counter("streamfn_streams_opened_total", "Streams opened.", (c) => c.opened);
    counter("streamfn_events_in_total", "Events accepted (retries dropped by seq not included).", (c, s) => c.endedEvents + (s?.liveEvents ?? 0));
    counter("streamfn_events_deduplicated_total", "Retried events dropped because their seq was already seen.", (c, s) => c.endedDuplicates + (s?.liveDuplicates ?? 0));
    counter("streamfn_outputs_out_total", "Outputs delivered by handlers.", (c, s) => c.endedOutputs + (s?.liveOutputs ?? 0));
    counter("streamfn_cold_starts_total", "Instances started (each one a cold start).", (c) => c.coldStarts);

    const labelled = <L extends string>(
      name: string,
      help: string,
      labelNames: readonly L[],
      series: (c: FunctionCounters) => Iterable<[Partial<Record<L, string>>, number]>,
    ): void => {
      const m: Counter<L | "function"> = new Counter({
        name,
        help,
        labelNames: ["function", ...labelNames],
        registers,
        collect: () => {
          m.reset();
          this.#current(); // gives functions deployed since the last scrape their zero series
          for (const [fn, c] of this.#counters) {
            for (const [labels, n] of series(c)) m.inc({ function: fn, ...labels } as Partial<Record<L | "function", string>>, n);
          }
        },
      });
    };
    labelled("streamfn_streams_refused_total", "Streams refused when opening, by error code (CAPACITY_EXCEEDED, STREAM_BUSY, STREAM_ENDED, SHUTTING_DOWN…).", ["code"], (c) =>
      [...c.refused].map(([code, n]) => [{ code }, n]),
    );
    labelled("streamfn_streams_started_total", "Streams that got a slot: start=warm (an instance was ready) or cold (waited for a new one).", ["start"], (c) => [
      [{ start: "warm" }, c.startedWarm],
      [{ start: "cold" }, c.startedCold],
    ]);
    labelled("streamfn_streams_closed_total", "Streams ended, by status (completed, failed) and reason (end, idle, max-duration, max-events, disconnect, returned, error).", ["status", "reason"], (c) =>
      [...c.closed].map(([key, n]) => {
        const [status, reason] = key.split(" ") as [string, string];
        return [{ status, reason }, n];
      }),
    );
    labelled("streamfn_streams_failed_total", "Failed streams by error code.", ["code"], (c) => [...c.failed].map(([code, n]) => [{ code }, n]));
    labelled("streamfn_instance_exits_total", "Instances that went away on their own, by code: INSTANCE_CRASHED (also recycled as unresponsive), INSTANCE_OUT_OF_MEMORY, FUNCTION_LOAD_FAILED.", ["code"], (c) =>
      [...c.instanceExits].map(([code, n]) => [{ code }, n]),
    );

    const histogram = (name: string, help: string, bounds: readonly number[], pick: (c: FunctionCounters) => BucketHistogram): void => {
      const family = new HistogramFamily(name, help, bounds, () => {
        this.#current(); // as above
        return [...this.#counters].map(([fn, c]): [Record<string, string>, BucketHistogram] => [{ function: fn }, pick(c)]);
      });
      registry.registerMetric(family.asMetric());
    };
    histogram("streamfn_event_latency_seconds", "From the arrival of the event the handler held to its output leaving the router.", kLatencyBoundsMs, (c) => c.latency);
    histogram("streamfn_stream_duration_seconds", "From a stream's open to its end record.", kStreamDurationBoundsMs, (c) => c.duration);
    histogram("streamfn_stream_wait_seconds", "From a stream's open until it got a slot.", kWaitBoundsMs, (c) => c.wait);
    histogram("streamfn_cold_start_duration_seconds", "From an instance's start until it could take streams.", kColdStartBoundsMs, (c) => c.coldStart);
  }
}
