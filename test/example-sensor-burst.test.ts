// examples/functions/sensor-burst.ts: z-score anomalies over one sensor burst.
import { strict as assert } from "node:assert";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { runStream } from "../src/api/index.js";
import type { StreamFunction } from "../src/api/index.js";
import { kExampleFunctionsDir, loadExampleFunction, readExampleData } from "./helpers/example-function.js";
import { startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";

interface Point {
  i: number;
  t: number | null;
}
interface Anomaly {
  type: "anomaly";
  device: string | null;
  start: Point;
  peak: Point & { value: number; z: number };
  end: Point;
  readings: number;
  durationMs: number | null;
  baseline: { mean: number; std: number };
  closedBy: string;
}
interface Summary {
  type: "summary";
  device: string | null;
  readings: number;
  skipped: number;
  mean: number | null;
  std: number | null;
  min: number | null;
  max: number | null;
  anomalies: number;
  endReason: string;
}
type Output = Anomaly | Summary;

/** A calm signal: 20 ± 0.2, deterministic, nowhere near 4 standard deviations. */
const calm = (i: number): number => 20 + 0.2 * Math.sin(i * 1.7);

/** Readings every 10 ms from values; `shift(i)` is added to the calm signal at reading i (0-based). */
function burst(n: number, shift: (i: number) => number = () => 0): { t: number; value: number }[] {
  return Array.from({ length: n }, (_, i) => ({ t: i * 10, value: calm(i) + shift(i) }));
}

/** Runs `body` with console.warn captured (runStream's ctx.log writes there). */
async function capturingWarnings<T>(body: () => Promise<T>): Promise<{ result: T; warnings: string[] }> {
  const warnings: string[] = [];
  const original = console.warn;
  console.warn = (...args: unknown[]) => void warnings.push(args.map(String).join(" "));
  try {
    return { result: await body(), warnings };
  } finally {
    console.warn = original;
  }
}

const anomaliesOf = (outputs: Output[]): Anomaly[] => outputs.filter((o): o is Anomaly => o.type === "anomaly");
const summaryOf = (outputs: Output[]): Summary => {
  const last = outputs.at(-1);
  assert.equal(last?.type, "summary", `the last output is the summary: ${JSON.stringify(outputs)}`);
  return last as Summary;
};

describe("sensor-burst example", () => {
  let fn: StreamFunction;
  const run = async (events: unknown[], endReason: "end" | "idle" = "end"): Promise<Output[]> =>
    (await runStream(fn, events, { endReason })) as Output[];
  before(async () => {
    fn = await loadExampleFunction("sensor-burst");
  });

  it("declares options that fit a burst: ends 2 s after the last reading, bounded in events and time", () => {
    assert.equal(fn.options.idleTimeoutMs, 2_000);
    assert.ok(fn.options.maxEvents !== undefined && fn.options.maxEvents <= 100_000);
    assert.ok(fn.options.maxDurationMs !== undefined && fn.options.maxDurationMs <= 300_000);
  });

  it("raises no anomaly on a flat or a calm signal, and summarizes it", async () => {
    const flat = await run(Array.from({ length: 50 }, (_, i) => ({ t: i, value: 7 })));
    assert.deepEqual(flat, [
      { type: "summary", device: null, readings: 50, skipped: 0, mean: 7, std: 0, min: 7, max: 7, anomalies: 0, endReason: "end" },
    ]);
    const noisy = await run(burst(200));
    assert.deepEqual(anomaliesOf(noisy), []);
    const s = summaryOf(noisy);
    assert.equal(s.readings, 200);
    assert.ok(Math.abs(s.mean! - 20) < 0.01 && s.std! > 0.1 && s.std! < 0.2, JSON.stringify(s));
    assert.ok(s.min! >= 19.8 && s.max! <= 20.2);
  });

  it("reports a sustained excursion once, with its start, peak and end, even when it dips back briefly", async () => {
    // readings 30–39 are high; reading 34 dips back to normal for one reading (fewer than `quiet`)
    const shift = (i: number): number => (i >= 30 && i < 40 && i !== 34 ? (i === 36 ? 6 : 3) : 0);
    const outputs = await run(burst(60, shift));
    const alerts = anomaliesOf(outputs);
    assert.equal(alerts.length, 1, JSON.stringify(alerts));
    const a = alerts[0]!;
    // positions count from 1: reading i (0-based) is position i + 1
    assert.deepEqual(a.start, { i: 31, t: 300 });
    assert.deepEqual(a.end, { i: 40, t: 390 });
    assert.equal(a.peak.i, 37);
    assert.equal(a.peak.value, calm(36) + 6);
    assert.ok(a.peak.z > 20, `peak z ${a.peak.z}`);
    assert.equal(a.readings, 9);
    assert.equal(a.durationMs, 90);
    assert.equal(a.closedBy, "calm");
    assert.ok(Math.abs(a.baseline.mean - 20) < 0.05, "the baseline is the calm signal's");
    assert.equal(outputs.indexOf(a), 0, "the alert comes before the summary");
    assert.equal(summaryOf(outputs).anomalies, 1);
  });

  it("reports two separate excursions as two alerts, and a low one as well as a high one", async () => {
    const shift = (i: number): number => (i >= 20 && i < 23 ? 4 : i >= 40 && i < 42 ? -4 : 0);
    const alerts = anomaliesOf(await run(burst(60, shift)));
    assert.deepEqual(
      alerts.map((a) => [a.start.i, a.end.i, Math.sign(a.peak.z)]),
      [
        [21, 23, 1],
        [41, 42, -1],
      ],
    );
  });

  it("closes an excursion still open when the burst ends with the end's reason", async () => {
    const outputs = await run(burst(30, (i) => (i >= 25 ? 5 : 0)), "idle");
    const alerts = anomaliesOf(outputs);
    assert.equal(alerts.length, 1);
    assert.deepEqual([alerts[0]!.start.i, alerts[0]!.end.i, alerts[0]!.readings, alerts[0]!.closedBy], [26, 30, 5, "idle"]);
    assert.equal(summaryOf(outputs).endReason, "idle");
  });

  it("alerts on nothing during the warm-up: the same spike is an anomaly only after it", async () => {
    const during = await run(burst(40, (i) => (i === 5 ? 5 : 0)));
    assert.deepEqual(anomaliesOf(during), [], "reading 6 is inside the default 10-reading warm-up");
    const afterwards = await run(burst(40, (i) => (i === 15 ? 5 : 0)));
    assert.deepEqual(anomaliesOf(afterwards).map((a) => a.peak.i), [16]);
    const short = await run(burst(8, (i) => (i === 7 ? 50 : 0)));
    assert.deepEqual(anomaliesOf(short), [], "a burst shorter than the warm-up has no baseline to deviate from");
    assert.equal(summaryOf(short).readings, 8);
  });

  it("takes its thresholds from a header event, and keeps the defaults for invalid ones with a warning", async () => {
    const spike = burst(40, (i) => (i === 30 ? 0.6 : 0)); // about 5 standard deviations of the calm signal
    assert.deepEqual(anomaliesOf(await run(spike)).map((a) => a.peak.i), [31], "the defaults see it");
    const strict = await run([{ device: "pump-7", zThreshold: 100 }, ...spike]);
    assert.deepEqual(anomaliesOf(strict), []);
    assert.equal(summaryOf(strict).device, "pump-7");
    assert.deepEqual(anomaliesOf(await run([{ warmup: 35 }, ...spike])), [], "inside a longer warm-up");
    const { result, warnings } = await capturingWarnings(() => run([{ zThreshold: "high", warmup: 1, quiet: 0 }, ...spike]));
    assert.deepEqual(anomaliesOf(result).map((a) => a.peak.i), [31]);
    assert.equal(warnings.length, 3, warnings.join("\n"));
    assert.match(warnings[0]!, /zThreshold must be a positive number, got "high"; using 4/);
    assert.match(warnings[1]!, /warmup must be an integer >= 2 .*, got 1; using 10/);
    assert.match(warnings[2]!, /quiet must be a positive integer, got 0; using 3/);
  });

  it("skips readings that are not numbers with a warning, and counts them", async () => {
    const good = burst(40, (i) => (i === 20 ? 5 : 0));
    const bad: unknown[] = [{ t: 1, value: "ERR" }, { t: 2 }, { t: 3, value: null }, 42, "x", null, [1]];
    const mixed = [...good.slice(0, 12), ...bad.slice(0, 4), ...good.slice(12, 30), ...bad.slice(4), ...good.slice(30)];
    const { result, warnings } = await capturingWarnings(() => run(mixed));
    const clean = await run(good);
    const { skipped, ...rest } = summaryOf(result);
    const { skipped: none, ...cleanRest } = summaryOf(clean);
    assert.equal(skipped, 7);
    assert.equal(none, 0);
    assert.deepEqual(rest, cleanRest, "bad readings change no statistic");
    assert.deepEqual(anomaliesOf(result), anomaliesOf(clean));
    assert.equal(warnings.length, 7, warnings.join("\n"));
    assert.match(warnings[0]!, /event 13: value is not a number \(\{"t":1,"value":"ERR"\}\); skipped/);
  });

  it("summarizes an empty burst", async () => {
    assert.deepEqual(await run([], "idle"), [
      { type: "summary", device: null, readings: 0, skipped: 0, mean: null, std: null, min: null, max: null, anomalies: 0, endReason: "idle" },
    ]);
  });

  describe("served", () => {
    let t: TestServer;
    let cacheDir: string;
    before(async () => {
      cacheDir = await mkdtemp(join(tmpdir(), "streamfn-example-cache-"));
      t = await startTestServer({}, { functionsDir: kExampleFunctionsDir, cacheDir });
    });
    after(async () => {
      await t.close();
      await rm(cacheDir, { recursive: true, force: true });
    });

    it("streams examples/data/sensor-burst.ndjson over WebSocket, ends on idle, and yields what runStream does", async () => {
      const data = await readExampleData("sensor-burst.ndjson");
      const expected = await capturingWarnings(() => run(data, "idle"));
      assert.equal(anomaliesOf(expected.result).length, 1, "the sample has one anomaly");
      assert.equal(summaryOf(expected.result).skipped, 1, "and one bad reading");

      const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/sensor-burst/streams/pump-7-burst`);
      for (const event of data) c.event(event);
      // no explicit end: the device just goes quiet, and the 2 s idle timeout ends the burst
      const end = await c.waitEnd(15_000);
      assert.equal(end.status, "completed");
      assert.equal(end.reason, "idle");
      assert.equal(end.events, data.length);
      assert.deepEqual(c.outputs(), expected.result);
    });
  });
});
