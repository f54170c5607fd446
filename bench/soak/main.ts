// `npm run soak`: many concurrent streams against a real server for a bounded time, with
// faults injected among healthy streams, every event and output counted per stream.
// See docs/reliability.md for what it covers and the figures of a run; `--help` for flags.
import { closeSync, openSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ServerHandle } from "../server-handle.js";
import { kProtocols } from "./clients.js";
import type { Protocol } from "./clients.js";
import { kKinds, kMix, runScenario } from "./scenarios.js";
import type { Kind, StreamResult } from "./scenarios.js";

const kUsage = `usage: npm run soak -- [options]
  --duration-s S      start new streams for this long (default 60); streams still running then finish
  --streams N         streams running at once (default 32)
  --concurrency N     stream slots per instance of the echo function (default: the function's own, 64)
  --events N          events of a stream: 1 to N, picked per stream (default 100)
  --seed N            seed of the mix of kinds, protocols and lengths (default 1)
  --max-rss-mb N      fail when the server's RSS goes above this (default 1024)
  --max-growth-mb N   fail when the server's RSS at the end exceeds its RSS early in the run by more (default 256)
  --json FILE         also write the summary as JSON to FILE
  --server-log FILE   the server's log (default: a file in the temporary directory, named at the end)`;

const { values: args } = parseArgs({
  options: {
    "duration-s": { type: "string", default: "60" },
    streams: { type: "string", default: "32" },
    concurrency: { type: "string" },
    events: { type: "string", default: "100" },
    seed: { type: "string", default: "1" },
    "max-rss-mb": { type: "string", default: "1024" },
    "max-growth-mb": { type: "string", default: "256" },
    json: { type: "string" },
    "server-log": { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
  strict: true,
});
if (args.help) {
  console.log(kUsage);
  process.exit(0);
}

const durationMs = num("duration-s", 0.5) * 1000;
const lanes = num("streams", 1);
const maxEvents = num("events", 1);
const maxRssBytes = num("max-rss-mb", 16) * 1024 * 1024;
const maxGrowthBytes = num("max-growth-mb", 1) * 1024 * 1024;
const concurrency = args.concurrency === undefined ? undefined : num("concurrency", 1);
const random = mulberry32(num("seed", 0));
/** Longest a single stream may take before it counts as hung. */
const kStreamTimeoutMs = 30_000;
const kProgressMs = 5_000;

const root = fileURLToPath(new URL("../../../", import.meta.url));
const functionsDir = join(root, "bench", "soak", "functions");
const cacheDir = await mkdtemp(join(tmpdir(), "streamfn-soak-"));
// Kept when the run fails (or when asked for): each fault writes a "stream failed" record.
const logPath = args["server-log"] ?? join(cacheDir, "server.log");
const logFd = openSync(logPath, "a");
const command = `npm run soak${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`;

log(`streamfn soak: ${command}`);
const server = await ServerHandle.start(functionsDir, cacheDir, { logFd, overrides: concurrency ? { echo: { concurrency } } : {} });
const base = `http://127.0.0.1:${server.port}`;
log(`server pid ${server.pid} on ${base}; ${lanes} streams at once for ${durationMs / 1000} s`);

interface KindTotals {
  streams: number;
  events: number;
  outputs: number;
  refusals: number;
  mismatches: number;
  held: number;
}
const totals = new Map<string, KindTotals>();
const failures: string[] = [];
const inFlight = new Map<Kind, number>(kKinds.map((k) => [k, 0]));
let started = 0;
let finished = 0;
let events = 0;
let outputs = 0;
let mismatches = 0;
let nextId = 0;

const rss = { start: 0, peak: 0, end: 0, early: 0, samples: [] as { t: number; rss: number }[] };
const first = await server.stats();
rss.start = first.rssBytes;
rss.peak = first.rssBytes;
const t0 = performance.now();

const sampler = setInterval(() => {
  void server.stats().then((s) => {
    rss.samples.push({ t: performance.now() - t0, rss: s.rssBytes });
    rss.peak = Math.max(rss.peak, s.rssBytes);
  }, () => {});
}, 1_000);
let lastProgress = { t: t0, events: 0 };
const progress = setInterval(() => void report(), kProgressMs);

// Each kind once first, over each protocol in turn, so even a short run covers every fault.
const queue: { kind: Kind; protocol: Protocol }[] = kKinds.map((kind, i) => ({ kind, protocol: kProtocols[i % kProtocols.length]! }));
const deadline = performance.now() + durationMs;

await Promise.all(Array.from({ length: lanes }, () => lane()));
clearInterval(progress);
clearInterval(sampler);
const wallMs = performance.now() - t0;

// Once the streams are over, the server should give back what they took.
await new Promise((r) => setTimeout(r, 2_000));
const last = await server.stats();
rss.end = last.rssBytes;
rss.peak = Math.max(rss.peak, last.rssBytes, last.peakRssBytes);
const earlyWindow = rss.samples.filter((s) => s.t >= Math.min(10_000, durationMs / 4) && s.t <= Math.min(20_000, durationMs / 2));
rss.early = earlyWindow.length > 0 ? median(earlyWindow.map((s) => s.rss)) : rss.start;
const health = await fetch(`${base}/healthz`).then((r) => r.status, () => 0);
if (health !== 200) fail(`server health probe after the run answered ${health}`);
if (rss.peak > maxRssBytes) fail(`server RSS peaked at ${mb(rss.peak)} MiB, above --max-rss-mb ${mb(maxRssBytes)}`);
if (rss.end - rss.early > maxGrowthBytes) fail(`server RSS grew from ${mb(rss.early)} MiB early in the run to ${mb(rss.end)} MiB at the end (more than --max-growth-mb ${mb(maxGrowthBytes)})`);
for (const kind of kKinds) if (!totals.has(kind)) fail(`no stream of kind ${kind} ran`);
await server.stop();
closeSync(logFd);

const summary = {
  command,
  date: new Date().toISOString(),
  durationS: durationMs / 1000,
  wallS: round(wallMs / 1000, 1),
  lanes,
  streams: finished,
  events,
  outputs,
  eventsPerSecond: Math.round(events / (wallMs / 1000)),
  mismatches,
  rssMiB: { start: mb(rss.start), peak: mb(rss.peak), early: mb(rss.early), end: mb(rss.end) },
  kinds: Object.fromEntries([...totals].sort()),
  failures: failures.slice(0, 50),
};
printSummary();
if (args.json) await writeFile(args.json, `${JSON.stringify(summary, null, 2)}\n`);
if (args["server-log"] || failures.length > 0) log(`server log: ${logPath}`);
if (failures.length === 0) await rm(cacheDir, { recursive: true, force: true });
process.exit(failures.length === 0 ? 0 : 1);

async function lane(): Promise<void> {
  for (;;) {
    const next = queue.shift() ?? (performance.now() < deadline ? pick() : undefined);
    if (!next) return;
    const { kind, protocol } = next;
    const id = `${kind}-${protocol}-${++nextId}`;
    started++;
    inFlight.set(kind, inFlight.get(kind)! + 1);
    const r = await runScenario(kind, protocol, id, { base, maxEvents, random, timeoutMs: kStreamTimeoutMs });
    inFlight.set(kind, inFlight.get(kind)! - 1);
    record(r);
  }
}

/** A kind by the weights of the mix (a costly fault already at its limit gives way to a healthy stream), and a protocol. */
function pick(): { kind: Kind; protocol: Protocol } {
  const total = kKinds.reduce((s, k) => s + kMix[k].weight, 0);
  let x = random() * total;
  let kind: Kind = "healthy";
  for (const k of kKinds) {
    x -= kMix[k].weight;
    if (x < 0) {
      kind = k;
      break;
    }
  }
  if (inFlight.get(kind)! >= kMix[kind].maxInFlight) kind = "healthy";
  return { kind, protocol: kProtocols[Math.floor(random() * kProtocols.length)]! };
}

function record(r: StreamResult): void {
  finished++;
  events += r.events;
  outputs += r.outputs;
  for (const key of [r.kind, `${r.kind}/${r.protocol}`]) {
    const t = totals.get(key) ?? { streams: 0, events: 0, outputs: 0, refusals: 0, mismatches: 0, held: 0 };
    t.streams++;
    if (r.held) t.held++;
    t.events += r.events;
    t.outputs += r.outputs;
    t.refusals += r.refusals;
    if (r.mismatches.length > 0) t.mismatches++;
    totals.set(key, t);
  }
  if (r.mismatches.length > 0) {
    mismatches++;
    fail(`${r.id} (${r.kind} over ${r.protocol}): ${r.mismatches.join("; ")}`);
  }
}

function fail(message: string): void {
  failures.push(message);
  if (failures.length <= 20) log(`MISMATCH ${message}`);
}

async function report(): Promise<void> {
  const now = performance.now();
  const rate = ((events - lastProgress.events) / ((now - lastProgress.t) / 1000)).toFixed(0);
  lastProgress = { t: now, events };
  const live = [...inFlight].filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(", ");
  const health = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(5_000) }).then((r) => r.status, () => 0);
  if (health !== 200) fail(`health probe at ${((now - t0) / 1000).toFixed(0)} s answered ${health}`);
  const current = rss.samples.at(-1)?.rss ?? rss.start;
  log(
    `${((now - t0) / 1000).toFixed(0).padStart(4)} s  streams ${finished} done, ${started - finished} running (${live})  ` +
      `events ${events}  outputs ${outputs}  ${rate} ev/s  mismatches ${mismatches}  RSS ${mb(current)} MiB (peak ${mb(rss.peak)})`,
  );
}

function printSummary(): void {
  const rows: string[][] = [["kind", "streams", "events", "outputs", "refused as expected", "mismatches"]];
  for (const kind of kKinds) {
    const t = totals.get(kind);
    if (!t) continue;
    rows.push([kind, String(t.streams), String(t.events), String(t.outputs), String(t.refusals), String(t.mismatches)]);
    for (const p of kProtocols) {
      const tp = totals.get(`${kind}/${p}`);
      if (tp) rows.push([`  ${p}`, String(tp.streams), String(tp.events), String(tp.outputs), String(tp.refusals), String(tp.mismatches)]);
    }
  }
  rows.push(["total", String(finished), String(events), String(outputs), "", String(mismatches)]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  console.log("");
  for (const r of rows) console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  "));
  console.log("");
  const slow = totals.get("slow-consumer");
  if (slow) console.log(`slow consumers: the handler was held by output backpressure in ${slow.held} of ${slow.streams} streams`);
  console.log(`wall ${summary.wallS} s, ${summary.eventsPerSecond} events/s; server RSS start ${summary.rssMiB.start} MiB, early ${summary.rssMiB.early}, peak ${summary.rssMiB.peak}, end ${summary.rssMiB.end}`);
  console.log(failures.length === 0 ? "result: every stream exact, every fault ended with its code" : `result: ${failures.length} failure(s)`);
}

function num(name: keyof typeof args, min: number): number {
  const v = Number(args[name]);
  if (!Number.isFinite(v) || v < min) {
    console.error(`--${name} must be a number >= ${min}, got ${JSON.stringify(args[name])}\n${kUsage}`);
    process.exit(2);
  }
  return v;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function mb(bytes: number): number {
  return Math.round(bytes / (1024 * 1024));
}

function round(x: number, digits: number): number {
  return Math.round(x * 10 ** digits) / 10 ** digits;
}

function log(message: string): void {
  console.log(`[soak] ${message}`);
}
