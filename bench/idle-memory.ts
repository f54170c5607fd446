// `npm run bench:idle-memory`: server RSS with many open, idle streams, for one or more builds
// side by side (say, this checkout against an earlier one's bin/streamfn.js), runs alternating.
// Each run starts `<bin> serve bench/functions`, reads the server's RSS once it has settled,
// opens the streams to the `idle` function (each sends one event and gets its output), waits,
// and reads it again. See docs/benchmarks.md, "Idle streams: memory by build".
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { connectMany, pingAll } from "./load.js";
import type { Payload } from "./load.js";
import { fmt, median, sleep } from "./stats.js";

const kUsage = `usage: npm run bench:idle-memory -- [options]
  --streams N   idle streams open at once (default 10000)
  --runs N      runs per build, alternating (default 3)
  --bin FILE    a build's CLI entry (repeatable; default this checkout's bin/streamfn.cjs)`;

const { values: args } = parseArgs({
  options: {
    streams: { type: "string", default: "10000" },
    runs: { type: "string", default: "3" },
    bin: { type: "string", multiple: true },
    help: { type: "boolean", short: "h", default: false },
  },
  strict: true,
});
if (args.help) {
  console.log(kUsage);
  process.exit(0);
}
const streams = Number(args.streams);
const runs = Number(args.runs);
if (!Number.isInteger(streams) || streams < 1) throw new Error(`--streams must be a positive integer, got ${args.streams}`);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a positive integer, got ${args.runs}`);
const repo = fileURLToPath(new URL("../..", import.meta.url));
const bins = args.bin ?? [`${repo}bin/streamfn.cjs`];
const functionsDir = `${repo}bench/functions`;

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) / 1024;
}

/** One small event per stream, as the idle streams of `npm run bench` would hold none of its size. */
const kIdleEvent: Payload = { kind: "json", frame: Buffer.from('{"data":{"idle":true}}') };

interface Sample {
  before: number;
  after: number;
}

async function once(bin: string): Promise<Sample> {
  const server = spawn(process.execPath, [bin, "serve", functionsDir, "--port", "0", "--no-watch"], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  const url = await new Promise<string>((resolve, reject) => {
    server.stdout.on("data", (c: Buffer) => {
      out += c.toString();
      const m = /listening on (http:\/\/[^ ]+) /.exec(out);
      if (m) resolve(m[1]!);
    });
    server.once("exit", (code) => reject(new Error(`${bin} exited (${code}) before listening:\n${out}`)));
  });
  server.stdout.resume();
  try {
    await sleep(1500);
    const before = rssMiB(server.pid!);
    // 50 handshakes in flight at once; each stream then handles its one event.
    const producers = await connectMany(() => `${url.replace(/^http/, "ws")}/v1/functions/idle/streams`, streams, 50);
    await pingAll(producers, kIdleEvent, 50);
    await sleep(3000);
    const after = rssMiB(server.pid!);
    for (const p of producers) p.ws.terminate();
    return { before, after };
  } finally {
    server.kill("SIGTERM");
    await new Promise((resolve) => server.once("exit", resolve));
  }
}

const results = new Map<string, Sample[]>(bins.map((b) => [b, []]));
for (let r = 0; r < runs; r++) {
  for (const bin of bins) {
    const s = await once(bin);
    results.get(bin)!.push(s);
    console.log(`[run ${r + 1}/${runs}] ${bin}: ${fmt(s.before)} → ${fmt(s.after)} MiB with ${streams} idle streams`);
  }
}
console.log(`\n${streams} idle streams, medians of ${runs} runs`);
console.log("| build | server RSS before | with the streams open | per stream |");
console.log("|---|---|---|---|");
for (const [bin, list] of results) {
  const before = median(list.map((s) => s.before));
  const after = median(list.map((s) => s.after));
  console.log(`| ${bin} | ${fmt(before)} MiB | ${fmt(after)} MiB | ${fmt(((after - before) * 1024) / streams)} KiB |`);
}
