// The end of a clip, alone: how long from the producer's end message to the clip's summary,
// one clip at a time, for streamfn's thread and inline tiers and the always-on stream job.
// At the clips' frame rate this is most of what a clip's processing overhead is made of (the
// last frame's result and the summary), so it says how much of the video target is the
// platform's path and how much is the machine's (a core that sat idle between frames).
// Usage: npm run build && node dist/bench/video/end-latency.js [--clips N] [--frames N] [--rounds N]
import { join } from "node:path";
import { parseArgs } from "node:util";
import { WebSocket } from "ws";
import type { FrameResult } from "../../examples/video/lib/analysis.js";
import { generatedClip, randomClipSpecs } from "../../examples/video/lib/clips.js";
import type { DecodedClip } from "../../examples/video/lib/ffmpeg.js";
import { median } from "../stats.js";
import { kRepoRoot, spawnReady, stopChild } from "./services.js";
import type { Spawned } from "./services.js";

const { values } = parseArgs({
  options: {
    clips: { type: "string", default: "25" },
    frames: { type: "string", default: "20" },
    rounds: { type: "string", default: "2" },
  },
});
const kClips = Number(values.clips);
const kFrames = Number(values.frames);
const kRounds = Number(values.rounds);
const kWarmup = 3;
const kFrameGapMs = 33;

interface Target {
  name: string;
  start(): Promise<{ server: Spawned; url: (id: string) => string }>;
}

const streamfn = (tier: "thread" | "inline"): Target => ({
  name: tier === "inline" ? "streamfn, inline tier" : "streamfn, thread tier",
  async start() {
    const server = await spawnReady(
      process.execPath,
      ["dist/src/cli/main.js", "serve", "examples/video/functions", "--port", "0", ...(tier === "inline" ? ["--set", "video-analyzer.sandbox=inline"] : [])],
      /listening on (http:\/\/\S+) \(/,
    );
    const base = server.match[1]!.replace(/^http/, "ws");
    return { server, url: (id) => `${base}/v1/functions/video-analyzer/streams/${id}` };
  },
});

const job: Target = {
  name: "always-on stream job",
  async start() {
    const server = await spawnReady(process.execPath, ["dist/bench/video/stream-job.js"], /listening on (\d+)/);
    return { server, url: (id) => `ws://127.0.0.1:${server.match[1]}/${id}` };
  },
};

/** Streams `frames` frames at the clip's rate, waits for the last one's result, then times end → summary. */
async function endToSummary(url: string, clip: DecodedClip, frames: number): Promise<number> {
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  let endSent = 0;
  let summaryAt = 0;
  let lastResult!: () => void;
  const lastSeen = new Promise<void>((resolve) => (lastResult = resolve));
  ws.on("message", (data: Buffer, isBinary: boolean) => {
    if (isBinary) return;
    const rec = JSON.parse(data.toString()) as { type: string; data?: FrameResult | { summary: unknown } };
    if (rec.type !== "output" || !rec.data) return;
    if ("summary" in rec.data) summaryAt = performance.now();
    else if (rec.data.frame === frames - 1) lastResult();
  });
  const closed = new Promise<void>((resolve) => ws.once("close", () => resolve()));
  ws.send(JSON.stringify({ data: { clip: clip.name, fps: clip.fps, width: clip.width, height: clip.height, format: clip.format, frames } }));
  for (let i = 0; i < frames; i++) {
    ws.send(clip.frames[i]!, { binary: true });
    await new Promise((r) => setTimeout(r, kFrameGapMs));
  }
  // The last frame's result first, so the end is timed alone.
  await lastSeen;
  endSent = performance.now();
  ws.send('{"end":true}');
  await closed;
  if (summaryAt === 0) throw new Error(`${url}: no summary`);
  return summaryAt - endSent;
}

async function main(): Promise<void> {
  const [spec] = randomClipSpecs(1, 7, 2, 2);
  const clip = await generatedClip(spec!, "jpeg", join(kRepoRoot, "node_modules/.cache/streamfn-video"));
  const frames = Math.min(kFrames, clip.frames.length);
  console.log(`end → summary, one clip at a time: ${kClips} clips of ${frames} jpeg frames at 30 fps per target and round (${kWarmup} more to warm up), ${kRounds} rounds`);
  const targets = [job, streamfn("inline"), streamfn("thread")];
  const results = new Map<string, number[]>(targets.map((t) => [t.name, []]));
  for (let round = 1; round <= kRounds; round++) {
    for (const t of targets) {
      const { server, url } = await t.start();
      const ms: number[] = [];
      try {
        for (let i = 0; i < kClips + kWarmup; i++) {
          const d = await endToSummary(url(`end-${round}-${i}-${Date.now()}`), clip, frames);
          if (i >= kWarmup) ms.push(d);
        }
      } finally {
        await stopChild(server.child);
      }
      const m = median(ms);
      results.get(t.name)!.push(m);
      console.log(`  [round ${round}/${kRounds}] ${t.name}: median ${m.toFixed(3)} ms (min ${Math.min(...ms).toFixed(3)}, max ${Math.max(...ms).toFixed(3)})`);
    }
  }
  console.log("\n| target | end → summary, median of clips per round (ms) |\n|---|---|");
  for (const [name, ms] of results) console.log(`| ${name} | ${ms.map((x) => x.toFixed(2)).join(" / ")} |`);
}

await main();
