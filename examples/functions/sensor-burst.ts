import { defineStreamFunction } from "streamfn";

// A sensor's burst: after a trigger a device sends readings for a few seconds, and the whole
// burst is one stream. The running statistics are plain local variables of one invocation —
// no store, no window state to reload per event. A reading that strays more than `zThreshold`
// standard deviations from the burst's baseline opens an excursion; the excursion is reported
// once, as one `anomaly` (start, peak, end), after `quiet` calm readings or at the end of the
// burst. A `summary` follows when the burst ends (explicitly, or 2 s after the last reading).
//
// Events: an optional header first, `{"device":"pump-7","zThreshold":4,"warmup":10,"quiet":3}`
// (any event without a `value`), then readings `{"t": <ms>, "value": <number>}`.
//
// Fed from MQTT (`streamfn serve examples/functions --mqtt mqtt://127.0.0.1:1883`, or
// `npm run demo:mqtt`): every message on `sensors/<device>/readings` is an event of that
// device's burst, a message on `sensors/<device>/end` ends it, and each output is published to
// `alerts/<device>` (docs/connectors.md).

interface Settings {
  /** |z| at or above this is anomalous. */
  zThreshold: number;
  /** Readings that only build the baseline: the first moments after a trigger are assumed calm. */
  warmup: number;
  /** Calm readings in a row that close an excursion: one noisy dip does not split an alert. */
  quiet: number;
}

const kDefaults: Settings = { zThreshold: 4, warmup: 10, quiet: 3 };

/** What a header may set each setting to. */
const kRules: Record<keyof Settings, { ok: (v: number) => boolean; want: string }> = {
  zThreshold: { ok: (v) => v > 0, want: "a positive number" },
  warmup: { ok: (v) => Number.isInteger(v) && v >= 2, want: "an integer >= 2 (a spread needs two readings)" },
  quiet: { ok: (v) => Number.isInteger(v) && v >= 1, want: "a positive integer" },
};

/** A perfectly flat baseline would make any change infinitely surprising; this keeps z finite. */
const kMinStd = 1e-6;

/** Welford's online mean and variance: one pass, constant memory, numerically stable. */
class RunningStats {
  count = 0;
  mean = 0;
  #m2 = 0;

  add(x: number): void {
    this.count++;
    const delta = x - this.mean;
    this.mean += delta / this.count;
    this.#m2 += delta * (x - this.mean);
  }

  /** Sample standard deviation; 0 until there are two values. */
  get std(): number {
    return this.count > 1 ? Math.sqrt(this.#m2 / (this.count - 1)) : 0;
  }
}

interface Point {
  /** Position of the reading among the burst's valid readings, from 1. */
  i: number;
  t: number | null;
}

interface Excursion {
  start: Point;
  end: Point;
  peak: Point & { value: number; z: number };
  /** Anomalous readings in it (calm ones between them do not count). */
  readings: number;
  baseline: { mean: number; std: number };
}

const round = (x: number): number => Math.round(x * 1000) / 1000;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export default defineStreamFunction<unknown, unknown>({
  idleTimeoutMs: 2_000, // a device that goes quiet for 2 s has finished its burst
  maxDurationMs: 60_000,
  maxEvents: 10_000,
  sources: [{ mqtt: "sensors/+/readings", end: { topic: "sensors/+/end" }, output: { topic: "alerts/{key}" } }],
  async *handler(events, ctx) {
    const settings = { ...kDefaults };
    let device: string | null = null;
    const baseline = new RunningStats(); // calm readings only, so an excursion cannot hide itself
    const all = new RunningStats(); // every valid reading, for the summary
    let min = Infinity;
    let max = -Infinity;
    let skipped = 0;
    let anomalies = 0;
    let first = true;
    let open: Excursion | undefined;
    let calm = 0;

    const alert = (x: Excursion, closedBy: string) => {
      anomalies++;
      return {
        type: "anomaly",
        device,
        start: x.start,
        peak: x.peak,
        end: x.end,
        readings: x.readings,
        durationMs: x.start.t !== null && x.end.t !== null ? x.end.t - x.start.t : null,
        baseline: x.baseline,
        closedBy,
      };
    };

    for await (const event of events) {
      if (first && isObject(event) && !("value" in event)) {
        first = false;
        device = typeof event.device === "string" ? event.device : null;
        for (const key of Object.keys(kRules) as (keyof Settings)[]) {
          if (!(key in event)) continue;
          const v = event[key];
          if (typeof v === "number" && kRules[key].ok(v)) settings[key] = v;
          else ctx.log.warn(`header: ${key} must be ${kRules[key].want}, got ${JSON.stringify(v)}; using ${settings[key]}`);
        }
        continue;
      }
      first = false;
      const value = isObject(event) ? event.value : undefined;
      if (typeof value !== "number" || !Number.isFinite(value)) {
        skipped++;
        ctx.log.warn(`event ${ctx.event.seq}: value is not a number (${JSON.stringify(event)?.slice(0, 100)}); skipped`);
        continue;
      }
      const t = isObject(event) && typeof event.t === "number" && Number.isFinite(event.t) ? event.t : null;

      all.add(value);
      min = Math.min(min, value);
      max = Math.max(max, value);
      const here: Point = { i: all.count, t };

      if (all.count <= settings.warmup) {
        baseline.add(value);
        continue;
      }
      const z = (value - baseline.mean) / Math.max(baseline.std, kMinStd);
      if (Math.abs(z) >= settings.zThreshold) {
        calm = 0;
        const peak = { ...here, value, z: round(z) };
        if (!open) {
          open = { start: here, end: here, peak, readings: 0, baseline: { mean: round(baseline.mean), std: round(baseline.std) } };
        }
        open.readings++;
        open.end = here;
        if (Math.abs(z) > Math.abs(open.peak.z)) open.peak = peak;
        continue;
      }
      baseline.add(value);
      if (open && ++calm >= settings.quiet) {
        yield alert(open, "calm");
        open = undefined;
      }
    }

    // The burst ended inside an excursion: it is still one alert, closed by the end.
    if (open) yield alert(open, ctx.endReason ?? "end");
    const any = all.count > 0;
    yield {
      type: "summary",
      device,
      readings: all.count,
      skipped,
      mean: any ? round(all.mean) : null,
      std: any ? round(all.std) : null,
      min: any ? min : null,
      max: any ? max : null,
      anomalies,
      endReason: ctx.endReason,
    };
  },
});
