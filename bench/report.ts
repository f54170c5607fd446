import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { fmt } from "./stats.js";

export interface BenchConfig {
  command: string;
  runs: number;
  streams: number;
  events: number;
  window: number;
  tputEvents: number;
  latencyEvents: number;
  warmStarts: number;
  coldStarts: number;
  idleStreams: number;
  /** Stream slots per instance for the flow scenarios, when set on the command line. */
  concurrency: number | undefined;
  payloads: ("json" | "binary")[];
  tiers: ("thread" | "inline")[];
  /** Whether each flow was also run against the inline ws reference server. */
  reference: boolean;
  scenarios: string[];
}

/** One flow scenario's figures (per run; the report shows the median of each over runs). */
export type FlowFigures = {
  eventsPerSec: number;
  /** Wall time of the run divided by its events. */
  wallUs: number;
  /** The same for the in-process floor of the same shape. */
  floorUs: number;
  overheadUs: number;
  latencyP50Us: number;
  latencyP99Us: number;
  floorP50Us: number;
  overheadP50Us: number;
  overheadP99Us: number;
  serverCpuUs: number;
  mainCpuUs: number;
  /** Server threads' voluntary context switches per event: wake-ups, robust to a noisy machine. */
  wakeupsPerEvent: number;
  clientCpuUs: number;
  rssMiB: number;
  /** The same flow against the inline ws reference server (NaN when not run). */
  refEventsPerSec: number;
  refOverheadUs: number;
  refLatencyP50Us: number;
  refServerCpuUs: number;
  /**
   * This run's ratios to the reference run right after it: overhead per event, server CPU per
   * event, and overhead p50 (latency p50 minus the floor's). The report shows their medians over
   * runs, which pair each run with its own reference (NaN when no reference ran).
   */
  overheadRatio: number;
  cpuRatio: number;
  p50Ratio: number;
};

export type StartFigures = {
  firstP50Us: number;
  firstP99Us: number;
  connectP50Us: number;
  connectP99Us: number;
};

export interface IdleFigures {
  streams: number;
  openSec: number;
  baseRssMiB: number;
  rssMiB: number;
  heapMiB: number;
  instances: number;
  openIdleCpuShare: number;
  toZeroSec: number;
  instancesAfter: number;
  idleCpuShare: number;
  rssAfterMiB: number;
  peakRssMiB: number;
}

export interface Results {
  config: BenchConfig;
  flows: Record<string, FlowFigures>;
  starts: Record<string, StartFigures>;
  idle: IdleFigures | undefined;
  machine: string;
  date: string;
}

const kBegin = "<!-- bench:results:begin -->";
const kEnd = "<!-- bench:results:end -->";

/**
 * Renders the results and, when `write`, puts them between the markers of docs/benchmarks.md
 * (replacing the previous run's section; the prose around it stays).
 */
export async function writeReport(results: Results, path: string, write: boolean): Promise<{ markdown: string; path: string }> {
  const markdown = render(results);
  if (write) {
    let doc: string;
    try {
      doc = await readFile(path, "utf8");
    } catch {
      doc = `# Benchmarks\n\n${kBegin}\n${kEnd}\n`;
    }
    const a = doc.indexOf(kBegin);
    const b = doc.indexOf(kEnd);
    const section = `${kBegin}\n${markdown}\n${kEnd}`;
    doc = a >= 0 && b > a ? doc.slice(0, a) + section + doc.slice(b + kEnd.length) : `${doc.trimEnd()}\n\n${section}\n`;
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, doc);
  }
  return { markdown, path };
}

function render(r: Results): string {
  const c = r.config;
  const out: string[] = [];
  out.push("### Latest run", "");
  out.push(`Command: \`${c.command}\` (${r.date.slice(0, 16).replace("T", " ")} UTC)  `);
  out.push(`Machine: ${r.machine}  `);
  out.push(
    `Medians of ${c.runs} run${c.runs === 1 ? "" : "s"}. The server runs in its own process; the load generator shares ` +
      "the same cores, so its CPU (last column) is taken from what the server could have used.",
    "",
  );

  const targets = targetRows(r);
  if (targets.length > 0) {
    out.push("#### Against the targets", "", "| target | goal | reached | |", "|---|---|---|---|");
    for (const t of targets) out.push(`| ${t[0]} | ${t[1]} | ${t[2]} | ${t[3] ? "met" : "**missed**"} |`);
    out.push("");
  }

  const flows = Object.entries(r.flows);
  if (flows.length > 0) {
    out.push(
      "#### Event flows",
      "",
      "| scenario | streams × events (in flight each) | events/s | µs/event: wall − floor = overhead | latency p50 / p99 µs | overhead p50 / p99 µs | server CPU µs/event (main thread) | server CPU s per 100k events | server wake-ups per event | client CPU µs/event | server RSS MiB |",
      "|---|---|---|---|---|---|---|---|---|---|---|",
    );
    for (const [name, f] of flows) {
      out.push(
        `| ${name} | ${shape(name, c)} | ${fmt(f.eventsPerSec)} | ${fmt(f.wallUs)} − ${fmt(f.floorUs)} = **${fmt(f.overheadUs)}** | ` +
          `${fmt(f.latencyP50Us)} / ${fmt(f.latencyP99Us)} | ${fmt(f.overheadP50Us)} / ${fmt(f.overheadP99Us)} | ` +
          `**${fmt(f.serverCpuUs)}** (${fmt(f.mainCpuUs)}) | ${fmt(f.serverCpuUs / 10, 2)} | ${fmt(f.wakeupsPerEvent, 2)} | ${fmt(f.clientCpuUs)} | ${fmt(f.rssMiB)} |`,
      );
    }
    out.push("");
    if (c.reference) {
      out.push(
        "#### Against an inline ws server (same run, same handler run on the server's one thread)",
        "",
        "| scenario | events/s: streamfn / inline | overhead µs/event: streamfn / inline | latency p50 µs: streamfn / inline | server CPU µs/event: streamfn / inline | ratios, median of runs: overhead, overhead p50, CPU |",
        "|---|---|---|---|---|---|",
      );
      for (const [name, f] of flows) {
        out.push(
          `| ${name} | ${fmt(f.eventsPerSec)} / ${fmt(f.refEventsPerSec)} | ${fmt(f.overheadUs)} / ${fmt(f.refOverheadUs)} | ` +
            `${fmt(f.latencyP50Us)} / ${fmt(f.refLatencyP50Us)} | ${fmt(f.serverCpuUs)} / ${fmt(f.refServerCpuUs)} | ${fmt(f.overheadRatio, 2)}×, ${fmt(f.p50Ratio, 2)}×, ${fmt(f.cpuRatio, 2)}× |`,
        );
      }
      out.push("");
    }
  }

  const starts = Object.entries(r.starts);
  if (starts.length > 0) {
    out.push("#### Stream starts", "", "| start | streams per run | first event → output p50 / p99 ms | connect → first output p50 / p99 ms |", "|---|---|---|---|");
    for (const [name, s] of starts) {
      out.push(
        `| ${name} | ${name === "cold" ? c.coldStarts : c.warmStarts} | ${fmt(s.firstP50Us / 1000, 2)} / ${fmt(s.firstP99Us / 1000, 2)} | ` +
          `${fmt(s.connectP50Us / 1000, 2)} / ${fmt(s.connectP99Us / 1000, 2)} |`,
      );
    }
    out.push("");
  }

  if (r.idle) {
    const i = r.idle;
    out.push(
      "#### Idle streams and scale to zero (one pass)",
      "",
      "| streams open at once | time to open them | server RSS: before → all open | instances | CPU while they sit idle | last stream ended → zero instances | instances, then | server CPU, then | server RSS, then (peak) |",
      "|---|---|---|---|---|---|---|---|---|",
      `| ${fmt(i.streams)} | ${fmt(i.openSec)} s | ${fmt(i.baseRssMiB)} → ${fmt(i.rssMiB)} MiB | ${i.instances} | ${fmt(i.openIdleCpuShare * 100, 2)}% of a core | ` +
        `${fmt(i.toZeroSec)} s | ${i.instancesAfter} | ${fmt(i.idleCpuShare * 100, 2)}% of a core | ${fmt(i.rssAfterMiB)} MiB (${fmt(i.peakRssMiB)}) |`,
      "",
    );
  }
  return out.join("\n");
}

function shape(name: string, c: BenchConfig): string {
  if (name.startsWith("latency")) return `1 × ${fmt(c.latencyEvents)} (1)`;
  if (name.startsWith("rtt")) return `${c.streams} × ${fmt(c.events)} (1)`;
  return `${c.streams} × ${fmt(c.tputEvents)} (${c.window})`;
}

/** [what, goal, reached, met] for each target whose scenario ran. */
function targetRows(r: Results): [string, string, string, boolean][] {
  const rows: [string, string, string, boolean][] = [];
  for (const kind of ["json", "binary"]) {
    const t = r.flows[`throughput-${kind}`];
    if (t) rows.push([`throughput, 1 KB ${kind} events`, "≥ 50,000 events/s", `${fmt(t.eventsPerSec)} events/s`, t.eventsPerSec >= 50_000]);
  }
  const rtt = r.flows["rtt-json"];
  if (rtt) {
    rows.push(["overhead per event, 50 streams × 200 JSON events, one in flight", "≈ 18 µs", `${fmt(rtt.overheadUs)} µs`, rtt.overheadUs <= 18]);
    rows.push(["server CPU per event, same workload", "≤ 12 µs", `${fmt(rtt.serverCpuUs)} µs`, rtt.serverCpuUs <= 12]);
  }
  for (const tier of r.config.tiers) {
    const suffix = tier === "inline" ? "-inline" : "";
    const label = tier === "inline" ? "inline tier" : "thread tier";
    const x = (v: number): string => `${fmt(v, 2)}×`;
    const rj = r.flows[`rtt-json${suffix}`];
    if (rj && r.config.reference) {
      rows.push([`${label}: overhead per event, 50 × 200 JSON, one in flight, ÷ inline ws server`, "≤ 1.2×", x(rj.overheadRatio), rj.overheadRatio <= 1.2]);
      rows.push([`${label}: server CPU per event, same, ÷ inline ws server`, "≤ 1.3×", x(rj.cpuRatio), rj.cpuRatio <= 1.3]);
    }
    const lj = r.flows[`latency-json${suffix}`];
    if (lj && r.config.reference) {
      rows.push([`${label}: one stream, overhead p50 ÷ inline ws server`, "≤ 1.2×", x(lj.p50Ratio), lj.p50Ratio <= 1.2]);
    }
    const tj = r.flows[`throughput-json${suffix}`];
    if (tj) rows.push([`${label}: throughput, 1 KB JSON, 50 streams pipelined`, "≥ 150,000 events/s", `${fmt(tj.eventsPerSec)} events/s`, tj.eventsPerSec >= 150_000]);
  }
  const warm = r.starts.warm;
  if (warm) rows.push(["warm stream start p50 (first event → output)", "≤ 1 ms", `${fmt(warm.firstP50Us / 1000, 2)} ms`, warm.firstP50Us <= 1000]);
  const cold = r.starts.cold;
  if (cold) rows.push(["cold start p50 (first event → output, new instance)", "≤ 50 ms", `${fmt(cold.firstP50Us / 1000, 1)} ms`, cold.firstP50Us <= 50_000]);
  const idle = r.idle;
  if (idle) {
    rows.push([`${fmt(idle.streams)} open idle streams: server RSS`, "≤ 1 GiB", `${fmt(idle.rssMiB)} MiB`, idle.rssMiB <= 1024]);
    rows.push([
      "idle past keep-alive: instances, server CPU",
      "0, ≈ 0",
      `${idle.instancesAfter}, ${fmt(idle.idleCpuShare * 100, 2)}% of a core`,
      idle.instancesAfter === 0 && idle.idleCpuShare < 0.01,
    ]);
  }
  return rows;
}
