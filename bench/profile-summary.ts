// Summarises a V8 .cpuprofile (from `node --cpu-prof`) as the functions with the most self
// time. Usage: node dist/bench/profile-summary.js <file.cpuprofile>... [--top N]
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

/** Self time per function (name + file + line), most first; `share` is of non-idle time. */
export function hotFunctions(file: string, top = 20): { busyMs: number; totalMs: number; hot: HotFunction[] } {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const n of profile.nodes) byId.set(n.id, n);
  const self = new Map<string, number>();
  let idle = 0;
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]!);
    // A sample's time is the gap to the next one.
    const dt = profile.timeDeltas[i + 1] ?? 0;
    total += dt;
    if (!node) continue;
    const f = node.callFrame;
    if (f.functionName === "(idle)") {
      idle += dt;
      continue;
    }
    const where = f.url ? `${shortUrl(f.url)}:${f.lineNumber + 1}` : "";
    const key = `${f.functionName || "(anonymous)"} ${where}`.trim();
    self.set(key, (self.get(key) ?? 0) + dt);
  }
  const busy = total - idle;
  const hot = [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, us]) => ({ name, selfMs: us / 1000, share: busy > 0 ? us / busy : 0 }));
  return { busyMs: busy / 1000, totalMs: total / 1000, hot };
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
  for (const f of args) console.log(formatHot(f, top));
}
