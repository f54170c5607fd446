// Summarises a V8 .cpuprofile (from `node --cpu-prof`) as the functions with the most self
// time, or (--areas) as self time per area of the code: system calls, Node, V8, ws, each
// streamfn component, the handler. With --us-per-event X the areas are also given in µs per
// event, as their share of busy time × X (the CPU per event an unprofiled run measured), so the
// sampler's own overhead does not inflate them.
// Usage: node dist/bench/profile-summary.js <file.cpuprofile>... [--top N] [--areas [--us-per-event X]]
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { pathToFileURL } from "node:url";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface HotFunction {
  name: string;
  selfMs: number;
  share: number;
}

/**
 * Self time (µs) summed by `keyOf` of each sample's frame, most first, with the busy (non-idle)
 * and total sampled time. A sample's time is the gap to the next one.
 */
function selfTimes(file: string, keyOf: (frame: ProfileNode["callFrame"]) => string): { busy: number; total: number; sorted: [string, number][] } {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const n of profile.nodes) byId.set(n.id, n);
  const self = new Map<string, number>();
  let idle = 0;
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]!);
    const dt = profile.timeDeltas[i + 1] ?? 0;
    total += dt;
    if (!node) continue;
    if (node.callFrame.functionName === "(idle)") {
      idle += dt;
      continue;
    }
    const key = keyOf(node.callFrame);
    self.set(key, (self.get(key) ?? 0) + dt);
  }
  return { busy: total - idle, total, sorted: [...self.entries()].sort((a, b) => b[1] - a[1]) };
}

/** Self time per function (name + file + line), most first; `share` is of non-idle time. */
export function hotFunctions(file: string, top = 20): { busyMs: number; totalMs: number; hot: HotFunction[] } {
  const { busy, total, sorted } = selfTimes(file, (f) => {
    const where = f.url ? `${shortUrl(f.url)}:${f.lineNumber + 1}` : "";
    return `${f.functionName || "(anonymous)"} ${where}`.trim();
  });
  const hot = sorted.slice(0, top).map(([name, us]) => ({ name, selfMs: us / 1000, share: busy > 0 ? us / busy : 0 }));
  return { busyMs: busy / 1000, totalMs: total / 1000, hot };
}

/** Where a frame's self time belongs: first matching rule wins. */
const kStartUp = "start-up (loading and compiling code; left out of µs/event)";
const kAreas: [string, (name: string, url: string) => boolean][] = [
  [kStartUp, (n, u) => /modules\/(cjs|esm)\/|bootstrap\/|cjs-module-lexer/.test(u) || /^(compileFunction|compileForInternalLoader)$/.test(n)],
  ["garbage collection", (n) => n === "(garbage collector)"],
  ["socket system calls (read, writev)", (n, u) => !u && /^(writev|writeBuffer|writeUtf8String|writeLatin1String|read|readStop|readStart|onStreamRead)$/.test(n)],
  ["thread messages (postMessage, receive)", (n, u) => (!u && /^(postMessage|drainMessagePort|receiveMessageOnPort)$/.test(n)) || u.includes("per_context/messageport") || (u.startsWith("node:internal/worker") && !u.includes("io"))],
  ["V8 and other native code (program, microtasks)", (n, u) => !u || n === "(program)"],
  ["Node internals (net, streams, events, timers)", (_n, u) => u.startsWith("node:")],
  ["ws (frames, masks, parser)", (_n, u) => u.includes("node_modules/ws/")],
  ["gateway", (_n, u) => u.includes("/src/gateway/")],
  ["router", (_n, u) => u.includes("/src/router/")],
  ["instance and hand-over", (_n, u) => u.includes("/src/instances/")],
  ["sandbox runtime", (_n, u) => u.includes("/src/runtime/") || u.includes("worker-main.bundle.cjs") || u.includes("/src/api/")],
  ["metrics", (_n, u) => u.includes("/src/metrics/")],
  ["reference server (bench)", (_n, u) => u.includes("/bench/inline-server")],
  ["handler (its bundle and the packages it imports)", (_n, u) => /\.streamfn\/|\/bundles\/|\.mjs$/.test(u)],
  ["other streamfn code", (_n, u) => u.includes("/dist/src/")],
  ["other", () => true],
];

export interface AreaTime {
  area: string;
  selfMs: number;
  share: number;
}

/** Self time per area of the code (kAreas), most first; `share` is of non-idle time. */
export function areaTimes(file: string): { busyMs: number; areas: AreaTime[] } {
  const { busy, sorted } = selfTimes(file, (f) => kAreas.find(([, match]) => match(f.functionName, f.url))![0]);
  const areas = sorted.map(([area, us]) => ({ area, selfMs: us / 1000, share: busy > 0 ? us / busy : 0 }));
  return { busyMs: busy / 1000, areas };
}

/**
 * A markdown table of areaTimes. With `usPerEvent`, each area's µs per event is its share of
 * the busy time outside start-up, times `usPerEvent`.
 */
export function formatAreas(file: string, usPerEvent?: number): string {
  const { busyMs, areas } = areaTimes(file);
  const startUp = areas.find((a) => a.area === kStartUp)?.share ?? 0;
  const lines = [`${basename(file)}: ${busyMs.toFixed(0)} ms busy`, usPerEvent ? "| area (self time) | share | µs/event |\n|---|---|---|" : "| area (self time) | share |\n|---|---|"];
  for (const a of areas) {
    const share = `${(a.share * 100).toFixed(1)}%`;
    const us = a.area === kStartUp || startUp >= 1 ? "—" : ((a.share / (1 - startUp)) * usPerEvent!).toFixed(1);
    lines.push(usPerEvent ? `| ${a.area} | ${share} | ${us} |` : `| ${a.area} | ${share} |`);
  }
  return lines.join("\n");
}

function shortUrl(url: string): string {
  const m = /\/(dist\/.*|node_modules\/.*)$/.exec(url);
  if (m) return m[1]!;
  if (url.startsWith("node:")) return url;
  return basename(url);
}

export function formatHot(file: string, top = 20): string {
  const { busyMs, totalMs, hot } = hotFunctions(file, top);
  const lines = [`${basename(file)}: ${busyMs.toFixed(0)} ms busy of ${totalMs.toFixed(0)} ms sampled`];
  for (const h of hot) lines.push(`  ${(h.share * 100).toFixed(1).padStart(5)}%  ${h.selfMs.toFixed(1).padStart(8)} ms  ${h.name}`);
  return lines.join("\n");
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const t = args.indexOf("--top");
  const top = t >= 0 ? Number(args.splice(t, 2)[1]) : 25;
  const u = args.indexOf("--us-per-event");
  const usPerEvent = u >= 0 ? Number(args.splice(u, 2)[1]) : undefined;
  const a = args.indexOf("--areas");
  const byArea = a >= 0 && args.splice(a, 1).length > 0;
  for (const f of args) console.log(byArea ? formatAreas(f, usPerEvent) : formatHot(f, top));
}
