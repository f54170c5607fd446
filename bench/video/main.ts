// `npm run bench:video [-- options]`: the video use case four ways — stream functions, per-event
// FaaS with state in Redis, batch FaaS, an always-on stream job — over the same clips, arriving
// at random times, with the same per-frame code, on this machine, in one run.
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { cpus } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ClipAnalyzer, detections } from "../../examples/video/lib/analysis.js";
import type { FrameFormat, FrameResult } from "../../examples/video/lib/analysis.js";
import { generatedClip, randomClipSpecs, seededRandom } from "../../examples/video/lib/clips.js";
import type { DecodedClip } from "../../examples/video/lib/ffmpeg.js";
import type { ClipRun } from "../../examples/video/lib/producer.js";
import { BatchFaasApproach, PerEventFaasApproach, StreamJobApproach, StreamfnApproach } from "./approaches.js";
import type { Approach, ApproachOptions } from "./approaches.js";
import { clipMetrics, summarise } from "./metrics.js";
import type { ApproachResult, ClipMetrics } from "./metrics.js";
import { ProcessMeter } from "./proc-meter.js";
import { markdownTable, svgChart, targetLines } from "./report.js";
import type { RunInfo } from "./report.js";
import { kRepoRoot } from "./services.js";

const usage = `usage: npm run bench:video -- [options]
  --quick             4 short clips (2–4 s), close together: about a minute in all
  --clips <k>         number of clips (default 20)
  --min-s, --max-s    clip length range in seconds (default 2, 10)
  --gap-s <s>         mean time between clip arrivals (exponential; default 3)
  --seed <n>          clip and arrival seed (default 7)
  --format jpeg|gray  wire format of the frames (default jpeg: the function decodes them)
  --fast              send every clip's frames as fast as possible instead of at 30 fps
  --keep-alive-ms <n> idle time before streamfn and the FaaS baselines stop an instance (default 5000)
  --only <a,b>        run only these approaches (streamfn, streamfn-inline, faas-per-event, faas-batch, stream-job)
  --write-docs        write the results into docs/benchmarks.md (## Video use case) and docs/video-bench.svg`;

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    clips: { type: "string" },
    "min-s": { type: "string" },
    "max-s": { type: "string" },
    "gap-s": { type: "string" },
    seed: { type: "string", default: "7" },
    format: { type: "string", default: "jpeg" },
    fast: { type: "boolean", default: false },
    "keep-alive-ms": { type: "string" },
    only: { type: "string" },
    "write-docs": { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (values.help) {
  console.log(usage);
  process.exit(0);
}

const quick = values.quick;
const K = Number(values.clips ?? (quick ? 4 : 20));
const minS = Number(values["min-s"] ?? (quick ? 2 : 2));
const maxS = Number(values["max-s"] ?? (quick ? 4 : 10));
const gapS = Number(values["gap-s"] ?? (quick ? 1 : 3));
const seed = Number(values.seed);
const format = values.format as FrameFormat;
const realtime = !values.fast;
const keepAliveMs = Number(values["keep-alive-ms"] ?? (quick ? 2000 : 5000));
if (format !== "jpeg" && format !== "gray") throw new Error(`--format must be jpeg or gray\n${usage}`);
for (const [k, v] of Object.entries({ clips: K, "min-s": minS, "max-s": maxS, "gap-s": gapS, seed, "keep-alive-ms": keepAliveMs })) {
  if (!Number.isFinite(v) || v < 0) throw new Error(`--${k} must be a non-negative number\n${usage}`);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const log = (s: string): void => console.log(s);
const kCacheDir = join(kRepoRoot, "node_modules/.cache/streamfn-video");

type Reference = Map<string, { frames: string; summary: string }>;
const strip = (rs: FrameResult[]): string => JSON.stringify(rs.map(({ us: _us, ...r }) => r));

/** The in-process floor: the per-frame code alone, clip after clip, in this process. */
async function floor(clips: DecodedClip[]): Promise<{ cpuPerFrameMs: number; wallPerFrameMs: number; reference: Reference }> {
  const reference: Reference = new Map();
  // one warm-up pass over the first clip so JIT and decoder start-up are not in the floor
  {
    const a = new ClipAnalyzer({ clip: "warm", fps: 30, width: clips[0]!.width, height: clips[0]!.height, format });
    for (const f of clips[0]!.frames) await a.frame(f);
  }
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let frames = 0;
  for (const clip of clips) {
    const a = new ClipAnalyzer({ clip: clip.name, fps: clip.fps, width: clip.width, height: clip.height, format });
    const rs: FrameResult[] = [];
    for (const f of clip.frames) rs.push(await a.frame(f));
    reference.set(clip.name, { frames: strip(rs), summary: JSON.stringify(detections(a.finish())) });
    frames += clip.frames.length;
  }
  const c = process.cpuUsage(c0);
  return { cpuPerFrameMs: (c.user + c.system) / 1000 / frames, wallPerFrameMs: (performance.now() - t0) / frames, reference };
}

async function runApproach(make: (o: ApproachOptions) => Approach, clips: DecodedClip[], offsetsMs: number[], reference: Reference): Promise<ApproachResult> {
  const meter = new ProcessMeter();
  const approach = make({ keepAliveMs, realtime, meter });
  log(`\n[${approach.name}] ${approach.title}: starting`);
  await approach.setup();
  await sleep(300);
  meter.markStart();
  meter.startSampling(100);
  const started = performance.now();
  let done = 0;
  let playing = 0;
  const runs: (ClipRun | Error)[] = await Promise.all(
    clips.map(async (clip, i) => {
      await sleep(offsetsMs[i]!);
      playing++;
      try {
        const run = await approach.runClip(clip);
        const m = clipMetrics(run);
        done++;
        log(`  [${approach.name}] ${String(done).padStart(2)}/${clips.length} ${clip.name} (${(clip.frames.length / clip.fps).toFixed(1)} s) at +${((performance.now() - started) / 1000).toFixed(1)} s: overhead ${m.overheadMs.toFixed(1)} ms, last frame → summary ${m.lastToSummaryMs.toFixed(1)} ms${playing > 1 ? `, ${playing - 1} other clip(s) playing` : ""}`);
        return run;
      } catch (err) {
        done++;
        log(`  [${approach.name}] ${clip.name} FAILED: ${(err as Error).message}`);
        return err as Error;
      } finally {
        playing--;
      }
    }),
  );
  const wallS = (performance.now() - started) / 1000;
  const end = meter.sample();
  const peakRssMb = meter.peakMb;
  const cold = await approach.coldStarts();
  log(`  [${approach.name}] all clips done in ${wallS.toFixed(1)} s; waiting ${((keepAliveMs + 1500) / 1000).toFixed(1)} s for instances to stop, then measuring 3 s of idle`);
  await sleep(keepAliveMs + 1500);
  const i0 = meter.sample();
  await sleep(3000);
  const i1 = meter.sample();
  meter.stopSampling();
  await approach.teardown();

  const clipsOk: ClipMetrics[] = [];
  const mismatches: string[] = [];
  let identical = 0;
  runs.forEach((run, i) => {
    const name = clips[i]!.name;
    if (run instanceof Error) {
      mismatches.push(`${name}: failed: ${run.message}`);
      return;
    }
    clipsOk.push(clipMetrics(run));
    const ref = reference.get(name)!;
    const sameFrames = strip([...run.results].sort((a, b) => a.frame - b.frame)) === ref.frames;
    const sameSummary = JSON.stringify(detections(run.summary!)) === ref.summary;
    if (sameFrames && sameSummary) identical++;
    else mismatches.push(`${name}: ${sameFrames ? "" : "per-frame results differ; "}${sameSummary ? "" : "summary differs"}`);
  });
  const agg = summarise(clipsOk);
  const result: ApproachResult = {
    name: approach.name,
    title: approach.title,
    clips: clipsOk,
    ...agg,
    coldStarts: cold.count,
    coldStartMeanMs: cold.count ? cold.totalMs / cold.count : NaN,
    cpuS: end.cpuS,
    cpuPerFrameMs: (end.cpuS * 1000) / Math.max(1, agg.frames),
    peakRssMb,
    idle: { processes: i1.processes, rssMb: i1.rssMb, cpuPct: ((i1.cpuS - i0.cpuS) / 3) * 100, holds: approach.idleHolds() },
    identical,
    mismatches,
    wallS,
  };
  log(`  [${approach.name}] overhead ${result.overheadTotalMs.toFixed(1)} ms in all (median ${result.overheadMedianMs.toFixed(1)} ms a clip), latency p50 ${result.latencyP50Ms.toFixed(1)} / p99 ${result.latencyP99Ms.toFixed(1)} ms, CPU ${result.cpuS.toFixed(2)} s, peak RSS ${result.peakRssMb.toFixed(0)} MB, ${result.coldStarts} cold start(s), detections identical for ${identical}/${clips.length}`);
  for (const m of mismatches) log(`  [${approach.name}] MISMATCH ${m}`);
  return result;
}

async function writeDocs(info: RunInfo, results: ApproachResult[]): Promise<void> {
  // One block per pacing mode, so a paced and a --fast run can both stand in the document.
  const mode = info.realtime ? "paced" : "fast";
  const svg = info.realtime ? "video-bench.svg" : "video-bench-fast.svg";
  const docs = join(kRepoRoot, "docs");
  await mkdir(docs, { recursive: true });
  await writeFile(join(docs, svg), svgChart(results, info));
  const begin = `<!-- video-bench:${mode}:begin (written by npm run bench:video -- --write-docs) -->`;
  const endMark = `<!-- video-bench:${mode}:end -->`;
  const block = [
    begin,
    `Command: \`${info.command}\` — ${info.clips} clips, ${info.videoSeconds.toFixed(1)} s of video (${info.framesPerApproach} frames) per approach, ${info.format} frames, ${info.realtime ? "sent at 30 fps" : "sent as fast as possible"}, arrivals spread over ${info.arrivalSpanS.toFixed(0)} s, keep-alive ${info.keepAliveMs} ms. ${info.machine}, ${info.date}. In-process floor: ${info.floorCpuPerFrameMs.toFixed(2)} ms CPU a frame.`,
    "",
    markdownTable(results, info),
    "",
    ...targetLines(results, info).map((l) => `- ${l}`),
    "",
    `![video benchmark, ${mode}](${svg})`,
    endMark,
  ].join("\n");
  const file = join(docs, "benchmarks.md");
  let text = existsSync(file) ? await readFile(file, "utf8") : "# Benchmarks\n";
  const re = new RegExp(`<!-- video-bench:${mode}:begin[\\s\\S]*?<!-- video-bench:${mode}:end -->`);
  if (re.test(text)) text = text.replace(re, () => block);
  else if (text.includes("## Video use case")) text = text.replace(/(## Video use case\n[\s\S]*?)(\n## |$)/, (_m, section: string, next: string) => `${section.trimEnd()}\n\n${block}\n${next}`);
  else text = `${text.trimEnd()}\n\n## Video use case\n\n${block}\n`;
  await writeFile(file, text);
  await mkdir(join(kRepoRoot, "bench/results"), { recursive: true });
  await writeFile(join(kRepoRoot, `bench/results/video-${mode}.json`), JSON.stringify({ info, results: results.map((r) => ({ ...r, clips: r.clips.map(({ latenciesMs: _l, ...c }) => c) })) }, null, 1));
  log(`\nwrote docs/benchmarks.md (## Video use case, ${mode} block), docs/${svg} and bench/results/video-${mode}.json`);
}

async function main(): Promise<void> {
  const command = `npm run bench:video${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`;
  log(`video benchmark: ${K} clips of ${minS}–${maxS} s, mean gap ${gapS} s, seed ${seed}, ${format} frames, ${realtime ? "30 fps" : "as fast as possible"}, keep-alive ${keepAliveMs} ms`);
  const specs = randomClipSpecs(K, seed, minS, maxS);
  const clips: DecodedClip[] = [];
  for (const spec of specs) {
    clips.push(await generatedClip(spec, format, kCacheDir));
    if (process.stdout.isTTY) process.stdout.write(`\rrendering and decoding clips with ffmpeg: ${clips.length}/${K}`);
  }
  if (process.stdout.isTTY) process.stdout.write("\n");
  log(`rendered and decoded ${K} clips (cached in node_modules/.cache/streamfn-video)`);
  const random = seededRandom(seed * 7919 + 1);
  const offsetsMs: number[] = [];
  let t = 0;
  for (let i = 0; i < K; i++) {
    offsetsMs.push(Math.round(t));
    t += -Math.log(1 - random()) * gapS * 1000;
  }
  const frames = clips.reduce((a, c) => a + c.frames.length, 0);
  log(`${frames} frames, ${(frames / 30).toFixed(1)} s of video; arrivals at ${offsetsMs.map((o) => (o / 1000).toFixed(1)).join(", ")} s`);

  log("in-process floor: the per-frame code alone over every clip…");
  const fl = await floor(clips);
  log(`  ${fl.cpuPerFrameMs.toFixed(3)} ms CPU, ${fl.wallPerFrameMs.toFixed(3)} ms wall a frame`);

  const all: [string, (o: ApproachOptions) => Approach][] = [
    ["streamfn", (o) => new StreamfnApproach(o)],
    ["streamfn-inline", (o) => new StreamfnApproach(o, "inline")],
    ["faas-per-event", (o) => new PerEventFaasApproach(o)],
    ["faas-batch", (o) => new BatchFaasApproach(o)],
    ["stream-job", (o) => new StreamJobApproach(o)],
  ];
  const only = values.only?.split(",").map((s) => s.trim());
  const results: ApproachResult[] = [];
  for (const [name, make] of all) if (!only || only.includes(name)) results.push(await runApproach(make, clips, offsetsMs, fl.reference));

  const info: RunInfo = {
    command,
    clips: K,
    framesPerApproach: frames,
    videoSeconds: frames / 30,
    format,
    realtime,
    keepAliveMs,
    arrivalSpanS: offsetsMs[offsetsMs.length - 1]! / 1000,
    floorCpuPerFrameMs: fl.cpuPerFrameMs,
    floorWallPerFrameMs: fl.wallPerFrameMs,
    machine: `${cpus().length} × ${cpus()[0]?.model.trim() ?? "cpu"}, Node ${process.version}`,
    date: new Date().toISOString().slice(0, 10),
  };
  log(`\n${markdownTable(results, info)}\n`);
  for (const l of targetLines(results, info)) log(`- ${l}`);
  if (values["write-docs"]) await writeDocs(info, results);
  const bad = results.filter((r) => r.identical !== K);
  if (bad.length) {
    log(`\ndetections differ for: ${bad.map((r) => r.name).join(", ")}`);
    process.exitCode = 1;
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
