import { Registry as PromRegistry, collectDefaultMetrics } from "prom-client";
import type { OutputSink, ProducerFlow, StreamHandle, StreamTable } from "../router/stream-table.js";
import { BucketHistogram, HistogramFamily } from "../metrics/bucket-histogram.js";
import { registerWorkPending } from "./cluster-metrics.js";
import { registerReadCounter, registerReadGauge } from "../metrics/read-metrics.js";
import type { ClusterHandle } from "./open-cluster.js";
import type { ClusterStreamTable } from "./gateway-table.js";

const kAppendBoundsMs = [0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000];

class FnCounts {
  opened = 0;
  appended = 0;
  relayed = 0;
  paused = 0;
  readonly append = new BucketHistogram(kAppendBoundsMs);
}

/**
 * A gateway's cluster metrics. Counted at the edges of the gateway's stream table (the table the
 * protocols see is wrapped, and the event log's append is timed) so the table itself stays as it is.
 */
export class GatewayMetrics {
  readonly registry = new PromRegistry();
  readonly #counts = new Map<string, FnCounts>();
  readonly #sinks = new WeakMap<OutputSink, OutputSink>();

  constructor(
    private readonly cluster: ClusterHandle,
    private readonly table: ClusterStreamTable,
  ) {
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 1000 });
    this.#timeAppends();
    const reg = this.registry;
    const per = (pick: (c: FnCounts) => number): (() => [Record<string, string>, number][]) => () => [...this.#counts].map(([fn, c]) => [{ function: fn }, pick(c)]);
    registerReadCounter(reg, "streamfn_cluster_streams_opened_total", "Streams opened through this gateway (queued for a worker).", per((c) => c.opened), ["function"]);
    registerReadCounter(reg, "streamfn_cluster_events_appended_total", "Records (events, end and cancel marks) this gateway appended to the event log.", per((c) => c.appended), ["function"]);
    registerReadCounter(reg, "streamfn_cluster_outputs_relayed_total", "Outputs this gateway relayed from the output log to a client (one per subscriber).", per((c) => c.relayed), ["function"]);
    registerReadCounter(reg, "streamfn_cluster_producers_paused_total", "Times a producer was paused because its events in flight reached the stream's inbox limit.", per((c) => c.paused), ["function"]);
    registerReadGauge(reg, "streamfn_cluster_streams_live", "Streams open on this gateway.", () => {
      const n = new Map<string, number>();
      for (const s of table.live()) n.set(s.functionName, (n.get(s.functionName) ?? 0) + 1);
      return [...n].map(([fn, v]) => [{ function: fn }, v]);
    }, ["function"]);
    registerWorkPending(reg, cluster.cluster, () => table.catalog().keys());
    const family = new HistogramFamily("streamfn_cluster_append_latency_seconds", "From an append to the event log until NATS stored it.", kAppendBoundsMs, () =>
      [...this.#counts].map(([fn, c]): [Record<string, string>, BucketHistogram] => [{ function: fn }, c.append]),
    );
    reg.registerMetric(family.asMetric());
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }

  #of(fn: string): FnCounts {
    let c = this.#counts.get(fn);
    if (!c) this.#counts.set(fn, (c = new FnCounts()));
    return c;
  }

  #timeAppends(): void {
    const events = this.cluster.events;
    const append = events.append.bind(events);
    events.append = async (fn, streamId, position, data, extra) => {
      const t0 = performance.now();
      const r = await append(fn, streamId, position, data, extra);
      const c = this.#of(fn);
      c.appended++;
      c.append.observe(performance.now() - t0);
      return r;
    };
  }

  #wrapSink(fn: string, sink: OutputSink | undefined): OutputSink | undefined {
    if (!sink) return undefined;
    let w = this.#sinks.get(sink);
    if (!w) {
      w = {
        output: (n, json, bytes) => {
          this.#of(fn).relayed++;
          sink.output(n, json, bytes);
        },
        end: (record) => sink.end(record),
        ...(sink.backedUp ? { backedUp: () => sink.backedUp!() } : {}),
        ...(sink.onceWritable ? { onceWritable: (cb: () => void) => sink.onceWritable!(cb) } : {}),
        // Every optional part of the sink contract is passed through: a missing one changes
        // behaviour (without `detach`, a producer cut off by a reattachment would get an end record).
        ...(sink.detach ? { detach: (record: { code: string; message: string }) => sink.detach!(record) } : {}),
      };
      this.#sinks.set(sink, w);
    }
    return w;
  }

  /** The table the protocols use: the gateway's own, counting opens, relayed outputs and pauses. */
  counted(): StreamTable {
    const table = this.table;
    const known = new Set<string>();
    const wrapSink = (fn: string, sink: OutputSink | undefined): OutputSink | undefined => this.#wrapSink(fn, sink);
    const of = (fn: string): FnCounts => this.#of(fn);
    const overrides: Partial<StreamTable> = {
      open: (fn, id, sink, resume) => {
        const counted = (s: StreamHandle): StreamHandle => {
          const key = `${s.functionName}\n${s.streamId}`;
          if (!known.has(key)) {
            // Bounded: one key per live stream, forgotten when the table no longer has it.
            for (const k of known) if (!table.get(...(k.split("\n") as [string, string]))) known.delete(k);
            known.add(key);
            of(s.functionName).opened++;
          }
          return s;
        };
        const r = table.open(fn, id, wrapSink(fn, sink), resume);
        return r instanceof Promise ? r.then(counted) : counted(r);
      },
      addSink: (stream, sink) => table.addSink(stream, wrapSink(stream.functionName, sink)!),
      removeSink: (stream, sink) => table.removeSink(stream, this.#sinks.get(sink) ?? sink),
      attachProducer: (stream, flow: ProducerFlow) =>
        table.attachProducer(stream, {
          pause: () => {
            of(stream.functionName).paused++;
            flow.pause();
          },
          resume: () => flow.resume(),
        }),
    };
    return new Proxy(table as unknown as StreamTable, {
      get(target, key) {
        if (typeof key === "string" && key in overrides) return overrides[key as keyof StreamTable];
        const v: unknown = Reflect.get(target, key, target);
        return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  }
}
