// `npm run bench`: the platform's hot path, measured end to end against an in-process floor.
// See docs/benchmarks.md for what each figure means; `npm run bench -- --help` for flags.
import { mkdtempSync, readFileSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { runFloor, loadFunction } from "./floor.js";
import { Producer, binaryPayload, connectMany, jsonPayload, oneShot, pingAll, runFlow } from "./load.js";
import type { FlowResult, Payload, StartSample } from "./load.js";
import { formatHot } from "./profile-summary.js";
import { writeReport } from "./report.js";
import type { BenchConfig, FlowFigures, IdleFigures, Results, StartFigures } from "./report.js";
import { ServerHandle, cpuBetween } from "./server-handle.js";
import type { ServerStats } from "./server-process.js";
import { fmt, medianOf, percentiles, sleep } from "./stats.js";

const kScenarios = ["latency", "rtt", "throughput", "warm", "cold", "idle"] as const;
type Scenario = (typeof kScenarios)[number];

const kUsage = `usage: npm run bench -- [options]
  --quick               small, fast run (1 run, fewer events, 1 000 idle streams); does not write docs unless --write
  --runs N              repeat each scenario N times and report medians (default 5)
  --only a,b            scenarios: ${kScenarios.join(", ")} (default all)
  --payload P           json, binary or both (default both)
  --streams S           concurrent streams in rtt and throughput (default 50)
  --events E            events per stream in rtt (default 200)
  --window W            events in flight per stream in throughput (default 128)
  --tput-events N       events per stream in throughput (default 2000)
  --latency-events N    events of the single-stream latency scenario (default 2000)
  --starts N            warm starts measured per run (default 200; cold starts: N/10)
  --idle-streams N      concurrently open idle streams (default 10000)
  --concurrency N       stream slots per instance of the flow scenarios' function (default: the function's own, 64)
  --tier T              isolation tier of the flow scenarios: thread, inline or both (default both: every flow
                        is measured on the thread tier and again on the inline tier, each beside the reference)
  --no-reference        skip the inline ws reference server (run by default after each flow)
  --profile             run the server under --cpu-prof and print its hottest functions
  --write / --no-write  update docs/benchmarks.md (default: write, except with --quick)
  --connectors          instead: messages/s from MQTT topics and NATS subjects into a handler and back
                        out, against the WebSocket path, on one server (own mosquitto and nats-server);
                        3 runs by default, --streams (default 20), --events (default 500), --window (default 256)`;

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    runs: { type: "string" },
    only: { type: "string" },
    payload: { type: "string", default: "both" },
    streams: { type: "string" },
    events: { type: "string" },
    window: { type: "string" },
    "tput-events": { type: "string" },
    "latency-events": { type: "string" },
    starts: { type: "string" },
    "idle-streams": { type: "string" },
    concurrency: { type: "string" },
    tier: { type: "string", default: "both" },
    profile: { type: "boolean", default: false },
    "no-reference": { type: "boolean", default: false },
    write: { type: "boolean" },
    "no-write": { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
    connectors: { type: "boolean", default: false },
  },
  strict: true,
});

if (args.help) {
  console.log(kUsage);
  process.exit(0);
}

if (args.connectors) {
  const { runConnectorBench } = await import("./connectors.js");
  await runConnectorBench(
    {
      runs: int("runs", 3),
      streams: int("streams", 20),
      events: int("events", 500),
      window: int("window", 256),
      write: args.write ?? !args["no-write"],
      profileDir: profileDirFor(args.profile),
    },
    log,
  );
  process.exit(0);
}

const quick = args.quick;
const config: BenchConfig = {
  command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`,
  runs: int("runs", quick ? 1 : 5),
  streams: int("streams", 50),
  events: int("events", quick ? 100 : 200),
  window: int("window", 128),
  tputEvents: int("tput-events", quick ? 400 : 2000),
  latencyEvents: int("latency-events", quick ? 500 : 2000),
  warmStarts: int("starts", quick ? 40 : 200),
  coldStarts: Math.max(3, Math.round(int("starts", quick ? 40 : 200) / 10)),
  idleStreams: int("idle-streams", quick ? 1000 : 10_000),
  concurrency: args.concurrency === undefined ? undefined : int("concurrency", 16),
  payloads: payloadKinds(args.payload),
  tiers: tierList(args.tier),
  reference: !args["no-reference"],
  scenarios: scenarioList(args.only),
};
const write = args.write ?? (!args["no-write"] && !quick);

const root = fileURLToPath(new URL("../../", import.meta.url));
const functionsDir = join(root, "bench", "functions");
const payloads: Record<"json" | "binary", Payload> = { json: jsonPayload(), binary: binaryPayload() };
const floorEvents: Record<"json" | "binary", unknown> = {
  json: (JSON.parse(payloads.json.frame.toString("utf8")) as { data: unknown }).data,
  binary: new Uint8Array(payloads.binary.frame),
};

const cacheDir = await mkdtemp(join(tmpdir(), "streamfn-bench-"));
const profileDir = args.profile ? await mkdtemp(join(tmpdir(), "streamfn-bench-prof-")) : undefined;
const startedAt = new Date();
const loadBefore = (await import("node:os")).loadavg();

log(`streamfn bench: ${config.command}`);
log(`runs ${config.runs}; scenarios ${config.scenarios.join(", ")}; payloads ${config.payloads.join(", ")}; load average ${loadBefore.map((l) => l.toFixed(2)).join(" ")}`);

const fn = await loadFunction(join(functionsDir, "echo.ts"), "echo");
const server = await ServerHandle.start(functionsDir, cacheDir, {
  nodeFlags: profileDir ? ["--cpu-prof", "--cpu-prof-interval=100", `--cpu-prof-dir=${profileDir}`] : [],
  overrides: config.concurrency
    ? { echo: { concurrency: config.concurrency }, "echo-inline": { concurrency: config.concurrency } }
    : {},
});
log(`server pid ${server.pid} on port ${server.port}`);

const perRun: Record<string, FlowFigures[]> = {};
const starts: Record<string, StartFigures[]> = {};
let idle: IdleFigures | undefined;
let failed: unknown;

try {
  await warmUp();
  for (let run = 1; run <= config.runs; run++) {
    const tag = `[run ${run}/${config.runs}]`;
    for (const kind of config.payloads) {
      for (const tier of config.tiers) {
        const fnName = tier === "inline" ? "echo-inline" : "echo";
        const suffix = tier === "inline" ? "-inline" : "";
        const key = (scenario: string): string => `${scenario}-${kind}${suffix}`;
        if (has("latency")) record(key("latency"), await flow(tag, key("latency"), fnName, 1, config.latencyEvents, 1, kind));
        if (has("rtt")) record(key("rtt"), await flow(tag, key("rtt"), fnName, config.streams, config.events, 1, kind));
        if (has("throughput")) {
          record(key("throughput"), await flow(tag, key("throughput"), fnName, config.streams, config.tputEvents, config.window, kind));
        }
      }
    }
    if (has("warm")) (starts.warm ??= []).push(await warmStarts(tag));
    if (has("cold")) (starts.cold ??= []).push(await coldStarts(tag));
  }
  if (has("idle")) idle = await idleStreams();
} catch (err) {
  failed = err;
  console.error(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
} finally {
  await server.stop();
  await rm(cacheDir, { recursive: true, force: true });
}

const results: Results = {
  config,
  flows: Object.fromEntries(Object.entries(perRun).map(([k, v]) => [k, medianOf(v)])),
  starts: Object.fromEntries(Object.entries(starts).map(([k, v]) => [k, medianOf(v)])),
  idle,
  machine: await machineNote(loadBefore),
  date: startedAt.toISOString(),
};

if (failed === undefined) {
  const { markdown, path } = await writeReport(results, join(root, "docs", "benchmarks.md"), write);
  console.log(`\n${markdown}`);
  log(write ? `wrote ${path}` : "docs/benchmarks.md left as it was (quick run or --no-write; --write to update it)");
}

if (profileDir) {
  const files = (await readdir(profileDir)).filter((f) => f.endsWith(".cpuprofile")).sort();
  for (const f of files) {
    // Node names them CPU.<date>.<time>.<pid>.<thread id>.<n>.cpuprofile; thread 0 is the main thread.
    const thread = f.split(".")[4];
    console.log(`\n${thread === "0" ? "main thread (gateway, router)" : `worker thread ${thread} (an instance, or a probe)`}: ${formatHot(join(profileDir, f), 25)}`);
  }
  log(`profiles kept in ${profileDir} (open them in Chrome DevTools → Performance)`);
}
process.exitCode = failed === undefined ? 0 : 1;

// ——— scenarios ———

/** Untimed: starts the instances and lets both sides' JIT settle before anything is measured. */
async function warmUp(): Promise<void> {
  log("warming up (untimed)");
  const untimed = { start: async () => {}, stop: async () => {} };
  for (const kind of config.payloads) {
    // Both pipelined and one-in-flight shapes: they exercise different paths.
    for (const [streams, events, window] of [[config.streams, 200, 16], [config.streams, 100, 1], [1, 500, 1]] as const) {
      for (const tier of config.tiers) {
        const producers = await connectMany(() => `${server.wsBase}/${tier === "inline" ? "echo-inline" : "echo"}/streams`, streams, 50);
        await runFlow(producers, events, window, payloads[kind], untimed);
        await Promise.all(producers.map((p) => p.end()));
      }
      await runFloor(fn, streams, events, floorEvents[kind]);
      if (config.reference) {
        const inline = await connectMany(() => server.inlineUrl, streams, 50);
        await runFlow(inline, events, window, payloads[kind], untimed);
        await Promise.all(inline.map((p) => p.end()));
      }
    }
  }
}

/**
 * One flow measurement: the floor with the same shape, then the served run over WebSocket,
 * with the server's CPU and memory read right before the first send and after the last output.
 */
async function flow(tag: string, name: string, fnName: string, streams: number, eventsPerStream: number, window: number, kind: "json" | "binary"): Promise<FlowFigures> {
  const floor = await runFloor(fn, streams, eventsPerStream, floorEvents[kind]);
  // Every other run measures the reference first (A B, then B A): whatever the order costs
  // (a warmer JIT, a GC left over from the run before) falls on both sides alike.
  const refFirst = config.reference && Number(/\d+/.exec(tag)?.[0] ?? 1) % 2 === 0;
  const early = refFirst ? await measure(() => server.inlineUrl, streams, eventsPerStream, window, kind) : undefined;
  const served = await measure(() => `${server.wsBase}/${fnName}/streams`, streams, eventsPerStream, window, kind);
  const reference = early ?? (config.reference ? await measure(() => server.inlineUrl, streams, eventsPerStream, window, kind) : undefined);
  const figures = flowFigures(served, floor, reference);
  log(
    `${tag} ${name} ${streams}×${eventsPerStream}${window > 1 ? ` window ${window}` : ""}: ${fmt(figures.eventsPerSec)} events/s, ` +
      `overhead ${fmt(figures.overheadUs)} µs/event (p50 ${fmt(figures.overheadP50Us)}, p99 ${fmt(figures.overheadP99Us)}), ` +
      `server CPU ${fmt(figures.serverCpuUs)} µs/event (main thread ${fmt(figures.mainCpuUs)}), ${fmt(figures.wakeupsPerEvent, 2)} wake-ups/event, client CPU ${fmt(figures.clientCpuUs)} µs/event` +
      (reference ? `; inline ws reference: ${fmt(figures.refEventsPerSec)} events/s, server CPU ${fmt(figures.refServerCpuUs)} µs/event` : ""),
  );
  return figures;
}

interface Measured {
  flow: FlowResult;
  before: ServerStats;
  after: ServerStats;
  client: NodeJS.CpuUsage;
}

/** Connects the producers, drives them, and reads both processes' counters around exactly the measured span. */
async function measure(url: () => string, streams: number, eventsPerStream: number, window: number, kind: "json" | "binary"): Promise<Measured> {
  const producers = await connectMany(url, streams, 50);
  let before: ServerStats | undefined;
  let after: ServerStats | undefined;
  let clientBefore: NodeJS.CpuUsage | undefined;
  let client: NodeJS.CpuUsage | undefined;
  const result = await runFlow(producers, eventsPerStream, window, payloads[kind], {
    start: async () => {
      before = await server.stats();
      clientBefore = process.cpuUsage();
    },
    stop: async () => {
      client = process.cpuUsage(clientBefore);
      after = await server.stats();
    },
  });
  await Promise.all(producers.map((p) => p.end()));
  return { flow: result, before: before!, after: after!, client: client! };
}

function flowFigures(m: Measured, floor: FlowResult, ref: Measured | undefined): FlowFigures {
  const served = m.flow;
  const [p50, p99] = percentiles(served.latencyUs, [50, 99]) as [number, number];
  const [f50, f99] = percentiles(floor.latencyUs, [50, 99]) as [number, number];
  const cpu = cpuBetween(m.before, m.after);
  const refCpu = ref ? cpuBetween(ref.before, ref.after) : undefined;
  const wallUs = (served.wallMs * 1000) / served.events;
  const floorUs = (floor.wallMs * 1000) / floor.events;
  const client = m.client;
  return {
    eventsPerSec: served.events / (served.wallMs / 1000),
    wallUs,
    floorUs,
    overheadUs: wallUs - floorUs,
    latencyP50Us: p50,
    latencyP99Us: p99,
    floorP50Us: f50,
    overheadP50Us: p50 - f50,
    overheadP99Us: p99 - f99,
    serverCpuUs: cpu.totalUs / served.events,
    mainCpuUs: cpu.mainUs / served.events,
    wakeupsPerEvent: cpu.wakeups / served.events,
    clientCpuUs: (client.user + client.system) / served.events,
    rssMiB: m.after.rssBytes / 2 ** 20,
    refEventsPerSec: ref ? ref.flow.events / (ref.flow.wallMs / 1000) : Number.NaN,
    refOverheadUs: ref ? (ref.flow.wallMs * 1000) / ref.flow.events - floorUs : Number.NaN,
    refLatencyP50Us: ref ? percentiles(ref.flow.latencyUs, [50])[0]! : Number.NaN,
    refServerCpuUs: refCpu ? refCpu.totalUs / ref!.flow.events : Number.NaN,
    overheadRatio: ref ? (wallUs - floorUs) / ((ref.flow.wallMs * 1000) / ref.flow.events - floorUs) : Number.NaN,
    cpuRatio: refCpu ? cpu.totalUs / served.events / (refCpu.totalUs / ref!.flow.events) : Number.NaN,
    p50Ratio: ref ? (p50 - f50) / (percentiles(ref.flow.latencyUs, [50])[0]! - f50) : Number.NaN,
  };
}

/** Warm start: a new stream on an instance that is already running. */
async function warmStarts(tag: string): Promise<StartFigures> {
  const url = `${server.wsBase}/echo/streams`;
  await oneShot(url, payloads.json); // makes sure an instance is up
  const before = await server.stats();
  const samples: StartSample[] = [];
  for (let i = 0; i < config.warmStarts; i++) samples.push(await oneShot(url, payloads.json));
  const after = await server.stats();
  const cold = after.functions.echo!.coldStarts - before.functions.echo!.coldStarts;
  if (cold > 0) log(`${tag} warm: note: ${cold} of ${config.warmStarts} streams needed a new instance`);
  const figures = startFigures(samples);
  log(`${tag} warm start ×${config.warmStarts}: first event → output p50 ${fmt(figures.firstP50Us)} µs, p99 ${fmt(figures.firstP99Us)} µs; connect → output p50 ${fmt(figures.connectP50Us)} µs`);
  return figures;
}

/** Cold start: every stream waits for a new instance (the `cold` function keeps none alive). */
async function coldStarts(tag: string): Promise<StartFigures> {
  const url = `${server.wsBase}/cold/streams`;
  const samples: StartSample[] = [];
  for (let i = 0; i < config.coldStarts; i++) {
    await waitFor(async () => (await server.stats()).functions.cold!.instances === 0, 10_000, "the cold function to have no instance");
    const before = (await server.stats()).functions.cold!.coldStarts;
    samples.push(await oneShot(url, payloads.json));
    const after = (await server.stats()).functions.cold!.coldStarts;
    if (after !== before + 1) throw new Error(`cold start ${i + 1} did not start a new instance`);
  }
  const figures = startFigures(samples);
  log(`${tag} cold start ×${config.coldStarts}: first event → output p50 ${fmt(figures.firstP50Us / 1000)} ms, p99 ${fmt(figures.firstP99Us / 1000)} ms; connect → output p50 ${fmt(figures.connectP50Us / 1000)} ms`);
  return figures;
}

function startFigures(samples: StartSample[]): StartFigures {
  const [firstP50Us, firstP99Us] = percentiles(samples.map((s) => s.firstEventUs), [50, 99]) as [number, number];
  const [connectP50Us, connectP99Us] = percentiles(samples.map((s) => s.connectUs), [50, 99]) as [number, number];
  return { firstP50Us, firstP99Us, connectP50Us, connectP99Us };
}

/**
 * N streams open at once, each having handled one event and now idle: the server's memory
 * for them. Then every stream ends: how long until no instance is left, and the CPU the
 * server uses once it is idle.
 */
async function idleStreams(): Promise<IdleFigures | undefined> {
  const n = config.idleStreams;
  // Each stream is a socket in this process and one in the server: both need the file descriptors.
  const limit = openFileLimit();
  if (limit !== undefined && limit < n + 1000) {
    log(`idle: skipped: ${n} streams need more than the open-file limit of ${limit}; raise it (ulimit -n ${n * 2}) or pass --idle-streams`);
    return undefined;
  }
  const url = `${server.wsBase}/idle/streams`;
  const base = await server.stats();
  log(`idle: opening ${n} streams`);
  const t0 = performance.now();
  const producers = await connectMany(() => url, n, 200, (done) => log(`idle: ${done}/${n} connected`));
  await pingAll(producers, payloads.json, 200);
  const openSec = (performance.now() - t0) / 1000;
  await sleep(1000);
  const open = await server.stats();
  if (open.liveStreams < n) throw new Error(`only ${open.liveStreams} of ${n} streams are live`);
  log(`idle: ${n} streams open and idle (${fmt(openSec)} s to open); server RSS ${fmt(open.rssBytes / 2 ** 20)} MiB, ${open.functions.idle!.instances} instances`);
  const cpuOpen = await cpuShare(3000);
  log(`idle: server CPU while the ${n} streams sit idle: ${fmt(cpuOpen * 100)}% of a core`);

  await Promise.all(producers.map((p: Producer) => {
    p.ws.close(1000);
    return p.closed;
  }));
  await waitFor(async () => (await server.stats()).liveStreams === 0, 60_000, "every stream to end");
  const endedAt = performance.now();
  log("idle: all streams ended; waiting for the pools to scale to zero");
  await waitFor(async () => totalInstances(await server.stats()) === 0, 60_000, "zero instances");
  const toZeroSec = (performance.now() - endedAt) / 1000;
  const cpuIdle = await cpuShare(5000);
  const after = await server.stats();
  log(`idle: zero instances ${fmt(toZeroSec)} s after the last stream ended; server CPU then ${fmt(cpuIdle * 100, 2)}% of a core, RSS ${fmt(after.rssBytes / 2 ** 20)} MiB`);
  return {
    streams: n,
    openSec,
    baseRssMiB: base.rssBytes / 2 ** 20,
    rssMiB: open.rssBytes / 2 ** 20,
    heapMiB: open.heapUsedBytes / 2 ** 20,
    instances: open.functions.idle!.instances,
    openIdleCpuShare: cpuOpen,
    toZeroSec,
    instancesAfter: totalInstances(after),
    idleCpuShare: cpuIdle,
    rssAfterMiB: after.rssBytes / 2 ** 20,
    peakRssMiB: after.peakRssBytes / 2 ** 20,
  };
}

/** The server's CPU time over `ms` of wall time, as a share of one core. */
async function cpuShare(ms: number): Promise<number> {
  const a = await server.stats();
  const t = performance.now();
  await sleep(ms);
  const b = await server.stats();
  return cpuBetween(a, b).totalUs / ((performance.now() - t) * 1000);
}

function openFileLimit(): number | undefined {
  try {
    const m = /Max open files\s+(\d+)/.exec(readFileSync("/proc/self/limits", "utf8"));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

function totalInstances(s: ServerStats): number {
  return Object.values(s.functions).reduce((sum, f) => sum + f.instances, 0);
}

// ——— helpers ———

function record(key: string, figures: FlowFigures): void {
  (perRun[key] ??= []).push(figures);
}

function has(s: Scenario): boolean {
  return config.scenarios.includes(s);
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

async function machineNote(loadBefore: number[]): Promise<string> {
  const os = await import("node:os");
  const cpus = os.cpus();
  const loadAfter = os.loadavg();
  let commit = "unknown";
  try {
    const { execFileSync } = await import("node:child_process");
    commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: root, encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], { cwd: root, encoding: "utf8" }).trim();
    if (dirty) commit += " + local changes";
  } catch {
    // not a git checkout
  }
  return (
    `${cpus.length} × ${cpus[0]?.model.trim() ?? "unknown CPU"}, ${fmt(os.totalmem() / 2 ** 30, 0)} GiB RAM, ` +
    `${os.type()} ${os.release()}, Node ${process.version}, commit ${commit}; ` +
    `load average (1 min) ${loadBefore[0]!.toFixed(2)} before, ${loadAfter[0]!.toFixed(2)} after`
  );
}

/** With --profile: a fresh directory the server's --cpu-prof writes into. */
function profileDirFor(on: boolean): string | undefined {
  if (!on) return undefined;
  return mkdtempSync(join(tmpdir(), "streamfn-bench-prof-"));
}

function log(line: string): void {
  const t = ((performance.now() / 1000) | 0).toString().padStart(4);
  console.log(`${t}s ${line}`);
}

function int(name: keyof typeof args, fallback: number): number {
  const raw = args[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`--${name} must be a positive integer, got ${JSON.stringify(raw)}\n${kUsage}`);
    process.exit(2);
  }
  return n;
}

function tierList(raw: string | undefined): ("thread" | "inline")[] {
  if (raw === "both" || raw === undefined) return ["thread", "inline"];
  if (raw === "thread" || raw === "inline") return [raw];
  console.error(`--tier must be thread, inline or both, got ${raw}`);
  process.exit(2);
}

function payloadKinds(raw: string | undefined): ("json" | "binary")[] {
  if (raw === "both" || raw === undefined) return ["json", "binary"];
  if (raw === "json" || raw === "binary") return [raw];
  console.error(`--payload must be json, binary or both, got ${JSON.stringify(raw)}`);
  process.exit(2);
}

function scenarioList(raw: string | undefined): Scenario[] {
  if (!raw) return [...kScenarios];
  const list = raw.split(",").map((s) => s.trim()).filter(Boolean);
  for (const s of list) {
    if (!(kScenarios as readonly string[]).includes(s)) {
      console.error(`--only: unknown scenario "${s}" (known: ${kScenarios.join(", ")})`);
      process.exit(2);
    }
  }
  return list as Scenario[];
}
