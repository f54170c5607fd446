// `npm run bench:cluster`: cluster mode (nats-server + `streamfn gateway` + `streamfn worker`
// processes) against embedded mode (`streamfn serve`), measured in one run on one machine.
// Server CPU is read from /proc/<pid>/stat of every server process (gateway + workers +
// nats-server summed in cluster mode), right before the first send and after the last output.
//
//   npm run bench:cluster [-- --runs 3 --events 200 --tput-events 400 --many 2000 --kills 5]
//   npm run bench:cluster -- --profile DIR    # also writes a V8 CPU profile of every server
//                                            # process to DIR (summarise: node dist/bench/profile-summary.js DIR/*.cpuprofile)
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cp, mkdtemp, rm } from "node:fs/promises";
import * as os from "node:os";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { connectMany, jsonPayload, runFlow } from "./load.js";
import type { FlowResult, Producer } from "./load.js";
import { fmt, median, percentiles, sleep } from "./stats.js";
import { openCluster } from "../src/cluster/open-cluster.js";
import { TestNatsServer, freePort } from "../test/helpers/nats-server.js";

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  const n = i > 0 ? Number(process.argv[i + 1]) : dflt;
  if (!Number.isInteger(n) || n < 1) {
    console.error(`--${name} must be a positive integer`);
    process.exit(2);
  }
  return n;
};
const kRuns = arg("runs", 3);
const kStreams = arg("streams", 50);
const kEvents = arg("events", 200);
const kTputEvents = arg("tput-events", 400);
const kWindow = arg("window", 32);
const kLatencyEvents = arg("latency-events", 500);
const kMany = arg("many", 2000);
const kKills = arg("kills", 5);
const kLeaseMs = 1000;
const kProfileDir = ((i) => (i > 0 ? process.argv[i + 1] : undefined))(process.argv.indexOf("--profile"));

const root = fileURLToPath(new URL("../../", import.meta.url));
const cli = join(root, "dist", "src", "cli", "main.js");
const functionsDir = join(root, "bench", "functions");
const payload = jsonPayload();
const tickUs = 1e6 / clockTicks();
const children = new Set<Proc>();

const log = (line: string): void => {
  process.stderr.write(`${((performance.now() / 1000) | 0).toString().padStart(4)}s ${line}\n`);
};

/** A child process of the real CLI; its output is kept (bounded) to wait for readiness. */
class Proc {
  readonly child: ChildProcess;
  output = "";
  constructor(readonly label: string, args: string[], cwd: string) {
    const prof = kProfileDir ? ["--cpu-prof", "--cpu-prof-dir", kProfileDir, "--cpu-prof-name", `${label.replace(/\W+/g, "-")}-${Date.now()}.cpuprofile`] : [];
    this.child = spawn(process.execPath, [...prof, cli, ...args], { cwd, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NO_COLOR: "1" } });
    const take = (c: Buffer): void => {
      this.output = (this.output + c.toString()).slice(-50_000);
    };
    this.child.stdout!.on("data", take);
    this.child.stderr!.on("data", take);
    children.add(this);
  }
  get pid(): number {
    return this.child.pid!;
  }
  async waitFor(re: RegExp, ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (!re.test(this.output)) {
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`${this.label} exited:\n${this.output.slice(-3000)}`);
      if (Date.now() > deadline) throw new Error(`${this.label} not ready after ${ms} ms:\n${this.output.slice(-3000)}`);
      await sleep(50);
    }
  }
  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }
  async kill(sig: NodeJS.Signals = "SIGTERM"): Promise<void> {
    children.delete(this);
    if (!this.alive) return;
    const exited = new Promise<void>((r) => this.child.once("exit", () => r()));
    this.child.kill(sig);
    const t = setTimeout(() => this.child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(t);
  }
}

interface Setup {
  name: string;
  wsBase: string;
  httpBase: string;
  /** Every server process of the set-up, by role. */
  pids: () => [string, number][];
}

/** utime + stime of a process (all its threads), µs; 0 for a gone process. */
function cpuUs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) * tickUs;
  } catch {
    return 0;
  }
}
const cpuOf = (s: Setup): Map<string, number> => {
  const m = new Map<string, number>();
  for (const [role, pid] of s.pids()) m.set(role, (m.get(role) ?? 0) + cpuUs(pid));
  return m;
};

interface Flow {
  meanUs: number;
  p50Us: number;
  p99Us: number;
  eventsPerSec: number;
  cpuPerEventUs: number;
  /** CPU per event by role (gateway, workers, nats-server; serve). */
  split: Record<string, number>;
}

let streamSeq = 0;
async function flow(s: Setup, streams: number, events: number, window: number): Promise<Flow> {
  const run = ++streamSeq;
  const producers = await connectMany((i) => `${s.wsBase}/echo/streams/b${run}-${i}`, streams, 50);
  let cpu0 = new Map<string, number>();
  let cpu1 = new Map<string, number>();
  const r: FlowResult = await runFlow(producers, events, window, payload, {
    start: async () => {
      cpu0 = cpuOf(s);
    },
    stop: async () => {
      cpu1 = cpuOf(s);
    },
  });
  await Promise.all(producers.map((p) => p.end()));
  let sum = 0;
  for (const x of r.latencyUs) sum += x;
  const [p50, p99] = percentiles(r.latencyUs, [50, 99]);
  const split: Record<string, number> = {};
  let total = 0;
  for (const [role, us] of cpu1) {
    split[role] = (us - (cpu0.get(role) ?? 0)) / r.events;
    total += split[role]!;
  }
  return { meanUs: sum / r.events, p50Us: p50!, p99Us: p99!, eventsPerSec: r.events / (r.wallMs / 1000), cpuPerEventUs: total, split };
}

async function waitPort(port: number, p: Proc): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/v1/status`);
      await res.arrayBuffer();
      return;
    } catch {
      if (!p.alive) throw new Error(`${p.label} exited:\n${p.output.slice(-3000)}`);
      if (Date.now() > deadline) throw new Error(`${p.label} did not listen on ${port}`);
      await sleep(100);
    }
  }
}

/** A copy of the bench's functions per process: each keeps its own bundle cache beside them. */
let copies = 0;
async function functionsCopy(cwd: string): Promise<string> {
  const dir = join(cwd, `functions-${++copies}`);
  await cp(functionsDir, dir, { recursive: true, filter: (src) => !src.includes(".streamfn") });
  return dir;
}

async function startWorker(nats: TestNatsServer, prefix: string, name: string, cwd: string, leaseMs?: number): Promise<Proc> {
  const w = new Proc(`worker ${name}`, ["worker", "--nats", nats.url, "--prefix", prefix, "--name", name, ...(leaseMs ? ["--lease-ms", String(leaseMs)] : []), await functionsCopy(cwd)], cwd);
  await w.waitFor(/"msg":"worker ready"|worker ready/, 60_000);
  return w;
}

async function startCluster(nats: TestNatsServer, prefix: string, workers: number, cwd: string, leaseMs?: number): Promise<{ setup: Setup; gateway: Proc; workers: Proc[] }> {
  const ws: Proc[] = [];
  for (let i = 1; i <= workers; i++) ws.push(await startWorker(nats, prefix, `${prefix}-w${i}`, cwd, leaseMs));
  const port = await freePort();
  const gw = new Proc(`gateway ${prefix}`, ["gateway", "--nats", nats.url, "--prefix", prefix, "--host", "127.0.0.1", "--port", String(port)], cwd);
  await waitPort(port, gw);
  const setup: Setup = {
    name: `cluster 1 gateway + ${workers} worker${workers > 1 ? "s" : ""}`,
    wsBase: `ws://127.0.0.1:${port}/v1/functions`,
    httpBase: `http://127.0.0.1:${port}`,
    pids: () => [["gateway", gw.pid], ...ws.filter((w) => w.alive).map((w): [string, number] => ["workers", w.pid]), ["nats-server", nats.pid!]],
  };
  return { setup, gateway: gw, workers: ws };
}

// ——— the run ———

const work = await mkdtemp(join(tmpdir(), "streamfn-cbench-"));
let nats: TestNatsServer | undefined;
const stopAll = async (): Promise<void> => {
  await Promise.all([...children].map((c) => c.kill()));
  await nats?.stop();
  await rm(work, { recursive: true, force: true });
};
for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => void stopAll().then(() => process.exit(130)));
// Last resort if the bench dies without its cleanup: no server process outlives it.
process.on("exit", () => {
  for (const c of children) c.child.kill("SIGKILL");
  if (nats?.pid) {
    try {
      process.kill(nats.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
});

const results: Record<string, unknown> = {};
let failed: unknown;
try {
  log(`cluster vs embedded: runs ${kRuns}; ${kStreams} streams × ${kEvents} events (rtt), × ${kTputEvents} window ${kWindow} (throughput); load average ${os.loadavg()[0]!.toFixed(2)}`);
  nats = await TestNatsServer.start();
  log(`nats-server pid ${nats.pid} on ${nats.url} (file store)`);
  const embPort = await freePort();
  const emb = new Proc("serve", ["serve", await functionsCopy(work), "--host", "127.0.0.1", "--port", String(embPort)], work);
  await waitPort(embPort, emb);
  const embedded: Setup = { name: "embedded (streamfn serve)", wsBase: `ws://127.0.0.1:${embPort}/v1/functions`, httpBase: `http://127.0.0.1:${embPort}`, pids: () => [["serve", emb.pid]] };
  log(`embedded pid ${emb.pid} on ${embPort}`);
  const c1 = await startCluster(nats, "one", 1, work);
  log(`cluster one: gateway ${c1.gateway.pid}, worker ${c1.workers.map((w) => w.pid).join(", ")}`);
  const c2 = await startCluster(nats, "two", 2, work);
  log(`cluster two: gateway ${c2.gateway.pid}, workers ${c2.workers.map((w) => w.pid).join(", ")}`);
  const setups = [embedded, c1.setup, c2.setup];

  for (const s of setups) {
    log(`warming up ${s.name} (untimed)`);
    await flow(s, kStreams, 50, 1);
    await flow(s, kStreams, 100, kWindow);
    await flow(s, 1, 200, 1);
  }
  const per: Record<string, { rtt: Flow[]; tput: Flow[]; one: Flow[] }> = {};
  for (let run = 1; run <= kRuns; run++) {
    for (const s of setups) {
      const r = (per[s.name] ??= { rtt: [], tput: [], one: [] });
      const rtt = await flow(s, kStreams, kEvents, 1);
      r.rtt.push(rtt);
      const tput = await flow(s, kStreams, kTputEvents, kWindow);
      r.tput.push(tput);
      const one = await flow(s, 1, kLatencyEvents, 1);
      r.one.push(one);
      log(
        `[run ${run}/${kRuns}] ${s.name}: rtt ${fmt(1e6 / rtt.eventsPerSec)} µs/event wall (round trip mean ${fmt(rtt.meanUs)} µs, p50 ${fmt(rtt.p50Us)}), server CPU ${fmt(rtt.cpuPerEventUs)} µs/event (${Object.entries(rtt.split).map(([k, v]) => `${k} ${fmt(v)}`).join(", ")}); ` +
          `throughput ${fmt(tput.eventsPerSec)} events/s (CPU ${fmt(tput.cpuPerEventUs)} µs/event); one stream p50 ${fmt(one.p50Us)} µs p99 ${fmt(one.p99Us)} µs`,
      );
    }
  }
  const med = (xs: Flow[], k: Exclude<keyof Flow, "split">): number => median(xs.map((x) => x[k]));
  const base = per[embedded.name]!;
  const table: Record<string, unknown> = {};
  for (const s of setups) {
    const r = per[s.name]!;
    const row = {
      // Wall time per event with 50 streams, one event in flight each: the hot path's "overhead per event" (floor not subtracted).
      overheadUs: 1e6 / med(r.rtt, "eventsPerSec"),
      rttMeanUs: med(r.rtt, "meanUs"),
      cpuPerEventUs: med(r.rtt, "cpuPerEventUs"),
      eventsPerSec: med(r.tput, "eventsPerSec"),
      tputCpuPerEventUs: med(r.tput, "cpuPerEventUs"),
      oneP50Us: med(r.one, "p50Us"),
      oneP99Us: med(r.one, "p99Us"),
      rttCpuSplit: Object.fromEntries(Object.keys(r.rtt[0]!.split).map((k) => [k, median(r.rtt.map((x) => x.split[k]!))])),
      tputCpuSplit: Object.fromEntries(Object.keys(r.tput[0]!.split).map((k) => [k, median(r.tput.map((x) => x.split[k]!))])),
    };
    table[s.name] = {
      ...row,
      overheadRatio: row.overheadUs / (1e6 / med(base.rtt, "eventsPerSec")),
      cpuRatio: row.cpuPerEventUs / med(base.rtt, "cpuPerEventUs"),
      throughputRatio: row.eventsPerSec / med(base.tput, "eventsPerSec"),
      oneP50Ratio: row.oneP50Us / med(base.one, "p50Us"),
    };
  }
  results.flows = table;
  await Promise.all([emb, ...c2.workers, c2.gateway].map((p) => p.kill()));

  // Takeover: a cluster of two workers at the lease under test; SIGKILL the owner, measure the next output.
  log(`takeover: ${kKills} kills at --lease-ms ${kLeaseMs}`);
  const tk = await startCluster(nats, "take", 2, work, kLeaseMs);
  const takeMs: number[] = [];
  for (let k = 1; k <= kKills; k++) {
    const [p] = await connectMany(() => `${tk.setup.wsBase}/echo/streams/take-${k}`, 1, 1);
    const next = (): Promise<number> =>
      new Promise((resolve, reject) => {
        p!.onOutput = () => resolve(performance.now());
        p!.closed.then(() => reject(p!.failure ?? new Error("stream closed")), reject);
        p!.send(payload);
      });
    await next();
    const owner = await ownerOf(tk.setup.httpBase, `take-${k}`);
    const victim = tk.workers.find((w) => w.output.includes(`"name":"${owner}"`) || w.label === `worker ${owner}`);
    if (!victim) throw new Error(`no worker process named ${owner}`);
    const t0 = performance.now();
    await victim.kill("SIGKILL");
    const t1 = await next();
    takeMs.push(t1 - t0);
    log(`takeover ${k}/${kKills}: ${fmt(t1 - t0)} ms (killed ${owner})`);
    p!.onOutput = () => {};
    await p!.end();
    tk.workers.splice(tk.workers.indexOf(victim), 1, await startWorker(nats, "take", owner, work, kLeaseMs));
  }
  const [t50, t99] = percentiles(takeMs, [50, 99]);
  results.takeover = { leaseMs: kLeaseMs, kills: kKills, p50Ms: t50, p99Ms: t99, allMs: takeMs.map((x) => Math.round(x)) };
  await Promise.all([...tk.workers, tk.gateway].map((p) => p.kill()));

  // Many streams through one gateway: what JetStream holds while they are open and after they end.
  log(`many streams: ${kMany} opened through the gateway of cluster one`);
  const h = await openCluster({ servers: nats.url, prefix: "one" });
  try {
    const counts = async (): Promise<Record<string, number>> => {
      const n = h.cluster.settings.names;
      const info = (s: string) => h.cluster.jsm.streams.info(s);
      let consumers = 0;
      for (const s of [n.events, n.outputs, n.work, `KV_${n.owners}`]) consumers += (await info(s)).state.consumer_count;
      return {
        consumers,
        eventSubjects: (await info(n.events)).state.num_subjects ?? 0,
        outputSubjects: (await info(n.outputs)).state.num_subjects ?? 0,
        ownerKeys: (await info(`KV_${n.owners}`)).state.num_subjects ?? 0,
        workItems: (await info(n.work)).state.messages,
      };
    };
    const before = await counts();
    const t0 = performance.now();
    const many = await connectMany((i) => `${c1.setup.wsBase}/idle/streams/many-${i}`, kMany, 50, (d) => log(`many streams: ${d} open`));
    await pingEach(many);
    const openSec = (performance.now() - t0) / 1000;
    const during = await counts();
    log(`many streams: ${kMany} open, each with its output back, in ${fmt(openSec)} s; ${JSON.stringify(during)}`);
    const t1 = performance.now();
    await Promise.all(many.map((p) => p.end()));
    const endSec = (performance.now() - t1) / 1000;
    await sleep(2000);
    const after = await counts();
    log(`many streams: all ended in ${fmt(endSec)} s; ${JSON.stringify(after)}`);
    results.many = { streams: kMany, openSec, endSec, before, during, after };
  } finally {
    await h.close();
  }
} catch (err) {
  failed = err;
  console.error(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
} finally {
  await stopAll();
}
if (failed === undefined) {
  console.log(JSON.stringify({ runs: kRuns, streams: kStreams, events: kEvents, tputEvents: kTputEvents, window: kWindow, latencyEvents: kLatencyEvents, machine: machine(), ...results }, null, 2));
}
process.exitCode = failed === undefined ? 0 : 1;

async function ownerOf(httpBase: string, streamId: string): Promise<string> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const st = (await (await fetch(`${httpBase}/v1/status`)).json()) as { workers?: { worker: string; streams: { streamId: string }[] }[] };
    const w = st.workers?.find((x) => x.streams.some((s) => s.streamId === streamId));
    if (w) return w.worker;
    if (Date.now() > deadline) throw new Error(`no owner of ${streamId} in the gateway's status`);
    await sleep(50);
  }
}

/** One event on each stream, 50 at a time, each waited for. */
async function pingEach(ps: Producer[]): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: 50 }, async () => {
    while (next < ps.length) {
      const p = ps[next++]!;
      await new Promise<void>((resolve, reject) => {
        p.onOutput = () => {
          p.onOutput = () => {};
          resolve();
        };
        p.closed.then(() => reject(p.failure ?? new Error("stream closed before its output")), reject);
        p.send(payload);
      });
    }
  }));
}

function machine(): string {
  return `${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, Node ${process.version}, load average ${os.loadavg()[0]!.toFixed(2)} at the end`;
}
function clockTicks(): number {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
}
