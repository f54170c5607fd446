// `npm run demo:video [-- options]`: streams a video clip frame by frame to the video-analyzer
// stream function and prints what it detects while the clip plays, then the clip's summary.
import { basename } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { ClipSummary, FrameEvent, FrameFormat, FrameResult } from "./lib/analysis.js";
import { generatedClip } from "./lib/clips.js";
import { decodeClip } from "./lib/ffmpeg.js";
import type { ClipSpec, DecodedClip } from "./lib/ffmpeg.js";
import { streamClip } from "./lib/producer.js";
import { StreamfnServer } from "../../src/server/server.js";

const usage = `usage: npm run demo:video -- [--file video.mp4] [--format jpeg|gray] [--fast] [--url http://127.0.0.1:8080]

  --file    any video ffmpeg reads (default: a clip generated from ffmpeg's test sources)
  --format  wire format of the frames: jpeg (default; the function decodes them with sharp)
            or gray (raw 160x120 8-bit gray)
  --fast    send frames as fast as the server takes them instead of at the clip's frame rate
  --url     use a running server (npx streamfn serve examples/video/functions) instead of
            starting one in this process`;

export const kDemoClip: ClipSpec = {
  name: "demo",
  fps: 30,
  scenes: [
    { kind: "bars", seconds: 2, box: { from: 0.5, to: 1.2 } },
    { kind: "mandelbrot", seconds: 1.5 },
    { kind: "gray", seconds: 2, box: { from: 0.6, to: 1.1 } },
    { kind: "life", seconds: 1.5 },
    { kind: "testsrc", seconds: 1 },
  ],
};

const kCacheDir = fileURLToPath(new URL("../../../node_modules/.cache/streamfn-video", import.meta.url));
const kFunctionsDir = fileURLToPath(new URL("../../../examples/video/functions", import.meta.url));

function describe(e: FrameEvent, fps: number): string {
  const at = (f: number): string => `${(f / fps).toFixed(2)} s`;
  switch (e.type) {
    case "cut":
      return `scene cut     at frame ${e.frame} (${at(e.frame)}), keyframe hash ${e.keyframe}`;
    case "motion-start":
      return `motion starts at frame ${e.frame} (${at(e.frame)})`;
    case "motion-end":
      return `motion ends   at frame ${e.end} (${at(e.end)}); segment ${e.start}–${e.end}`;
  }
}

class Progress {
  readonly #tty = process.stdout.isTTY === true;
  #sent = 0;
  #results = 0;
  #lastMotion = 0;
  #lastPrinted = -1;
  constructor(readonly clip: DecodedClip) {}

  sent(i: number): void {
    this.#sent = i + 1;
    this.#draw();
  }

  result(r: FrameResult, eventsLine: string[]): void {
    this.#results = r.frame + 1;
    this.#lastMotion = r.motion;
    if (eventsLine.length) {
      this.#clear();
      for (const l of eventsLine) console.log(`  ${l}`);
    }
    this.#draw();
  }

  done(): void {
    this.#clear();
  }

  #clear(): void {
    if (this.#tty) process.stdout.write("\r\x1b[2K");
  }

  #draw(): void {
    const n = this.clip.frames.length;
    const width = 30;
    const filled = Math.round((this.#results / n) * width);
    const line = `[${"#".repeat(filled)}${"-".repeat(width - filled)}] sent ${this.#sent}/${n}, results ${this.#results}/${n}, ${(this.#sent / this.clip.fps).toFixed(1)}/${(n / this.clip.fps).toFixed(1)} s, motion ${this.#lastMotion.toFixed(3)}`;
    if (this.#tty) process.stdout.write(`\r\x1b[2K${line}`);
    else {
      const quarter = Math.floor((this.#results / n) * 4);
      if (quarter !== this.#lastPrinted) {
        this.#lastPrinted = quarter;
        console.log(line);
      }
    }
  }
}

function printSummary(s: ClipSummary, latencies: number[], lastToSummaryMs: number): void {
  const sorted = [...latencies].sort((a, b) => a - b);
  const pct = (p: number): string => (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN).toFixed(1);
  console.log(`\nsummary of ${s.clip}: ${s.frames} frames, ${s.durationS} s at ${s.fps} fps`);
  console.log(`  scene cuts:      ${s.cuts.length ? s.cuts.map((f) => `${f} (${(f / s.fps).toFixed(2)} s)`).join(", ") : "none"}`);
  console.log(`  motion segments: ${s.segments.length ? s.segments.map((g) => `${g.start}–${g.end}`).join(", ") : "none"}`);
  console.log(`  keyframes:       ${s.keyframes.map((k) => `${k.frame}:${k.hash}`).join(", ")}`);
  console.log(`  moving frames:   ${s.movingFrames}, mean motion ${s.meanMotion}`);
  console.log(`  per-frame code:  ${s.computeMs.toFixed(1)} ms in all (${(s.computeMs / Math.max(1, s.frames)).toFixed(2)} ms a frame)`);
  console.log(`  result latency:  p50 ${pct(50)} ms, p99 ${pct(99)} ms (frame due → its result back); last frame → summary ${lastToSummaryMs.toFixed(1)} ms`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      file: { type: "string" },
      format: { type: "string", default: "jpeg" },
      fast: { type: "boolean", default: false },
      url: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(usage);
    return;
  }
  const format = values.format as FrameFormat;
  if (format !== "jpeg" && format !== "gray") throw new Error(`--format must be jpeg or gray, got ${values.format}\n${usage}`);

  console.log(values.file ? `decoding ${values.file} with ffmpeg…` : "rendering the demo clip with ffmpeg's test sources (cached after the first run)…");
  const clip = values.file ? await decodeClip(values.file, format, basename(values.file)) : await generatedClip(kDemoClip, format, kCacheDir);
  if (clip.frames.length === 0) throw new Error("ffmpeg produced no frames");
  const avgKb = clip.frames.reduce((a, f) => a + f.byteLength, 0) / clip.frames.length / 1024;
  console.log(`${clip.name}: ${clip.frames.length} frames, ${clip.width}×${clip.height} ${format}, ${clip.fps} fps, ${avgKb.toFixed(1)} KiB a frame`);

  let server: StreamfnServer | undefined;
  let base = values.url;
  if (!base) {
    const t0 = performance.now();
    server = await StreamfnServer.start({ functionsDir: kFunctionsDir, port: 0, host: "127.0.0.1", graceMs: 1_000 });
    base = server.url;
    console.log(`streamfn serving examples/video/functions on ${base} (ready in ${(performance.now() - t0).toFixed(0)} ms)`);
  }
  const streamId = `${clip.name.replace(/[^A-Za-z0-9._:~-]+/g, "-").slice(0, 100)}-${Date.now()}`;
  const url = `${base.replace(/^http/, "ws").replace(/\/$/, "")}/v1/functions/video-analyzer/streams/${streamId}`;
  console.log(`streaming ${values.fast ? "as fast as possible" : `at ${clip.fps} fps`} to ${url}\n`);
  const progress = new Progress(clip);
  try {
    const run = await streamClip(clip, {
      url,
      realtime: !values.fast,
      onSent: (i) => progress.sent(i),
      onResult: (r) => progress.result(r, (r.events ?? []).map((e) => describe(e, clip.fps))),
    });
    progress.done();
    const latencies = run.resultAt.map((t, i) => t - run.due[i]!);
    printSummary(run.summary!, latencies, run.summaryAt - run.sentAt[run.frames - 1]!);
  } finally {
    progress.done();
    await server?.close();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
