// `npm run bench:start`: server start as a user meets it. Packs this checkout, installs the
// tarball in an empty project, writes six small functions and times, from spawning the
// installed `streamfn serve` to the first output of one stream: as the first run after the
// install (no build cache, no code cache: a fresh container), with an empty build cache but
// the code cache an earlier run wrote, and with both caches a previous run left (a restart on
// the same disk).
// See docs/benchmarks.md, "Server start".
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { fmt, median } from "./stats.js";

const kUsage = `usage: npm run bench:start -- [options]
  --runs N          measured runs of each case (default 7), after one warm-up
  --against FILE    also install this streamfn tarball (say, the build before a change) and
                    time it in turn with this checkout's, A B A B; ratios are A/B
  --keep            leave the temporary projects on disk (their paths are printed)`;

const { values: args } = parseArgs({
  options: {
    runs: { type: "string", default: "7" },
    against: { type: "string" },
    keep: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
  strict: true,
});
if (args.help) {
  console.log(kUsage);
  process.exit(0);
}
const runs = Number(args.runs);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a positive integer, got ${args.runs}`);

const repo = fileURLToPath(new URL("../..", import.meta.url));

/** Six small functions: an echo, one with options, a helper import, a generator, a filter, a counter. */
const kFunctions: Record<string, string> = {
  "shared.ts": `export const double = (n: number): number => n * 2;\n`,
  "f1.ts": `import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({ async *handler(events) { for await (const e of events) yield e; } });\n`,
  "f2.ts": `import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({ idleTimeoutMs: 5000, async *handler(events) { for await (const e of events) yield { got: e }; } });\n`,
  "f3.ts": `import { defineStreamFunction } from "streamfn";
import { double } from "./shared.js";
export default defineStreamFunction({ async *handler(events) { for await (const e of events) yield double(Number(e)); } });\n`,
  "f4.ts": `import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({ async *handler(events) { let n = 0; for await (const _ of events) n++; yield n; } });\n`,
  "f5.ts": `import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({ concurrency: 8, async *handler(events) { for await (const e of events) if (e !== null) yield e; } });\n`,
  "f6.mjs": `import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({ async *handler(events, ctx) { for await (const e of events) { ctx.log("seen"); yield [e]; } } });\n`,
};

/**
 * Run inside the installed project: spawns the installed binary, waits for its start-up line,
 * opens one stream, sends one event, prints the times, then stops the server with SIGTERM (so
 * it shuts down as it would in a container) and waits for it to exit.
 */
const kClient = `import { spawn } from "node:child_process";
import WebSocket from "ws";
const t0 = performance.now();
const child = spawn("node_modules/.bin/streamfn", ["serve", "fns", "--port", "0"], { stdio: ["ignore", "pipe", "inherit"] });
let out = "";
const url = await new Promise((resolve, reject) => {
  child.stdout.on("data", (c) => {
    out += c;
    const m = /streamfn listening on (http:\\/\\/[^ ]+) /.exec(out);
    if (m) resolve(m[1]);
  });
  child.once("exit", (code) => reject(new Error("streamfn serve exited (" + code + ") before listening:\\n" + out)));
});
const listenMs = performance.now() - t0;
child.stdout.resume();
const ws = new WebSocket(url.replace(/^http/, "ws") + "/v1/functions/f1/streams");
await new Promise((resolve, reject) => {
  ws.once("open", () => ws.send(JSON.stringify({ data: 1 })));
  ws.on("message", (m) => { if (JSON.parse(String(m)).type === "output") resolve(); });
  ws.once("error", reject);
});
const firstOutputMs = performance.now() - t0;
ws.terminate();
child.kill("SIGTERM");
await new Promise((resolve) => child.once("exit", resolve));
console.log(JSON.stringify({ listenMs, firstOutputMs }));
`;

function sh(cmd: string, argv: string[], cwd: string): string {
  return execFileSync(cmd, argv, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
}

/** An empty project with `tarball` installed, the functions in fns/ and the client. */
function project(tarball: string, label: string): string {
  const dir = mkdtempSync(join(tmpdir(), `streamfn-start-${label}-`));
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: `start-${label}`, private: true, type: "module" }));
  sh("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "--silent", tarball], dir);
  mkdirSync(join(dir, "fns"));
  for (const [file, text] of Object.entries(kFunctions)) writeFileSync(join(dir, "fns", file), text);
  writeFileSync(join(dir, "first-output.mjs"), kClient);
  return dir;
}

interface Sample {
  listenMs: number;
  firstOutputMs: number;
}

type CacheCase = "fresh" | "cold" | "warm";

function once(dir: string, cache: CacheCase): Promise<Sample> {
  if (cache !== "warm") rmSync(join(dir, "fns", ".streamfn"), { recursive: true, force: true });
  // The binary's V8 code cache, which the first run after an install writes (bin/streamfn.cjs).
  if (cache === "fresh") rmSync(join(dir, "node_modules", "streamfn", "dist", "src", "cli", ".v8-cache"), { recursive: true, force: true });
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ["first-output.mjs"], { cwd: dir, stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.once("exit", (code) => {
      const line = out.trim().split("\n").pop() ?? "";
      if (code !== 0 || !line.startsWith("{")) reject(new Error(`the client failed (${code}): ${out}`));
      else resolvePromise(JSON.parse(line) as Sample);
    });
  });
}

const work = mkdtempSync(join(tmpdir(), "streamfn-pack-"));
console.log(`packing ${repo} …`);
const packed = sh("npm", ["pack", "--silent", "--pack-destination", work], repo).trim().split("\n").pop()!;
const subjects: { label: string; dir: string }[] = [{ label: "A", dir: project(join(work, packed), "a") }];
if (args.against) subjects.push({ label: "B", dir: project(resolve(args.against), "b") });
for (const s of subjects) console.log(`${s.label}: ${s.dir}`);

const load = loadavg().map((l) => l.toFixed(2)).join(" ");
const results = new Map<string, Sample[]>();
for (const cache of ["fresh", "cold", "warm"] as const) {
  // One warm-up each: file caches, and for "warm" the cache it then reuses.
  for (const s of subjects) await once(s.dir, cache);
  for (let i = 0; i < runs; i++) {
    for (const s of subjects) {
      const key = `${s.label} ${cache}`;
      const list = results.get(key) ?? [];
      list.push(await once(s.dir, cache));
      results.set(key, list);
    }
  }
}

console.log(`\n${runs} runs each after a warm-up; ${cpus().length} CPUs; load average at start ${load}, at end ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
console.log("| case | listening (median) | first output (min / median / max) |");
console.log("|---|---|---|");
for (const [key, list] of results) {
  const first = list.map((s) => s.firstOutputMs);
  console.log(
    `| ${key} | ${fmt(median(list.map((s) => s.listenMs)))} ms | ${fmt(Math.min(...first))} / ${fmt(median(first))} / ${fmt(Math.max(...first))} ms |`,
  );
}
if (subjects.length === 2) {
  for (const cache of ["fresh", "cold", "warm"]) {
    const a = results.get(`A ${cache}`)!;
    const b = results.get(`B ${cache}`)!;
    const ratios = a.map((s, i) => s.firstOutputMs / b[i]!.firstOutputMs);
    console.log(`A/B first output, ${cache}: median of pairwise ratios ${median(ratios).toFixed(2)}`);
  }
}
if (args.keep) console.log(`kept: ${work} ${subjects.map((s) => s.dir).join(" ")}`);
else {
  rmSync(work, { recursive: true, force: true });
  for (const s of subjects) rmSync(s.dir, { recursive: true, force: true });
}
