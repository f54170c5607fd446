import type { Metric } from "prom-client";

/**
 * A histogram accumulator cheap enough for the per-output path: a bucket search over a few
 * bounds and three number updates (tens of ns; prom-client's own `observe` hashes and
 * validates its labels on every call and costs ~0.5 µs, a tenth of our per-event budget).
 * Values are observed in milliseconds and exported in seconds.
 */
export class BucketHistogram {
  /** Per bucket, not cumulative; the last slot counts values above every bound. */
  readonly counts: Float64Array;
  sumMs = 0;
  count = 0;

  constructor(readonly boundsMs: readonly number[]) {
    this.counts = new Float64Array(boundsMs.length + 1);
  }

  observe(ms: number): void {
    const bounds = this.boundsMs;
    let i = 0;
    while (i < bounds.length && ms > bounds[i]!) i++;
    this.counts[i]!++;
    this.sumMs += ms;
    this.count++;
  }
}

interface ExportedValue {
  value: number;
  labels: Record<string, string | number>;
  metricName: string;
}

/**
 * Exposes a family of BucketHistograms (one per label set) to a prom-client Registry as one
 * `histogram` metric. prom-client has no public way to hand it pre-aggregated buckets, so this
 * speaks the shape its Registry reads (`name`, `help`, `type`, `get()`); `series` runs at
 * scrape time and yields the current label sets and their accumulators.
 */
export class HistogramFamily {
  readonly type = "histogram";
  readonly aggregator = "sum";
  readonly #series: () => Iterable<[labels: Record<string, string>, histogram: BucketHistogram]>;

  constructor(
    readonly name: string,
    readonly help: string,
    readonly boundsMs: readonly number[],
    series: () => Iterable<[labels: Record<string, string>, histogram: BucketHistogram]>,
  ) {
    this.#series = series;
  }

  /** What `registry.registerMetric` takes. */
  asMetric(): Metric {
    return this as unknown as Metric;
  }

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: ExportedValue[] }> {
    const values: ExportedValue[] = [];
    const bucketName = `${this.name}_bucket`;
    for (const [labels, h] of this.#series()) {
      let cumulative = 0;
      for (let i = 0; i < h.counts.length; i++) {
        cumulative += h.counts[i]!;
        const le = i < this.boundsMs.length ? this.boundsMs[i]! / 1000 : "+Inf";
        values.push({ value: cumulative, labels: { ...labels, le }, metricName: bucketName });
      }
      values.push({ value: h.sumMs / 1000, labels, metricName: `${this.name}_sum` });
      values.push({ value: h.count, labels, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** Counters are never reset from outside; the Registry's resetMetrics() is a no-op here. */
  reset(): void {}
}
