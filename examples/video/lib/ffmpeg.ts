// Video in and out through ffmpeg: the binary shipped by the @ffmpeg-installer npm packages
// (or FFMPEG_PATH), so `npm ci` is the whole set-up.
import { spawn } from "node:child_process";
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FrameFormat } from "./analysis.js";
import { kAnalysisHeight, kAnalysisWidth } from "./analysis.js";

/** Path of the ffmpeg binary: FFMPEG_PATH, else the one the npm package ships. */
export function ffmpegPath(): string {
  if (process.env.FFMPEG_PATH) return process.env.FFMPEG_PATH;
  try {
    const require = createRequire(import.meta.url);
    return (require("@ffmpeg-installer/ffmpeg") as { path: string }).path;
  } catch (err) {
    throw new Error(`no ffmpeg: install the npm dependencies (npm ci) or set FFMPEG_PATH (${String(err)})`);
  }
}

/** Runs ffmpeg; resolves with stdout (as one buffer) and stderr, rejects on a non-zero exit. */
export function runFfmpeg(args: string[], timeoutMs = 120_000): Promise<{ stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(ffmpegPath(), ["-hide_banner", "-nostdin", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
      if (stderr.length > 200_000) stderr = stderr.slice(-100_000);
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve({ stdout: Buffer.concat(out), stderr });
      else reject(new Error(`ffmpeg ${args.join(" ")} failed (${signal ?? code}): ${stderr.slice(-1500)}`));
    });
  });
}

/** One scene of a generated clip: an ffmpeg test source, optionally with a box that moves for a while. */
export interface SceneSpec {
  kind: "bars" | "gray" | "mandelbrot" | "life" | "testsrc" | "cellauto";
  seconds: number;
  /** A white box slides across the scene between these times (seconds into the scene). */
  box?: { from: number; to: number };
}

export interface ClipSpec {
  name: string;
  fps: number;
  scenes: SceneSpec[];
}

const kClipSize = "320x240";

function sceneGraph(scene: SceneSpec, fps: number): string {
  const d = scene.seconds.toFixed(3);
  // The first frames are skipped: some sources (life) change wholesale between frames 0 and 1.
  const tail = `trim=start_frame=4:duration=${d},setpts=PTS-STARTPTS,format=yuv420p`;
  let base: string;
  switch (scene.kind) {
    case "bars":
      base = `smptebars=s=${kClipSize}:r=${fps}`;
      break;
    case "gray":
      base = `color=c=0x505050:s=${kClipSize}:r=${fps}`;
      break;
    case "mandelbrot":
      base = `mandelbrot=s=${kClipSize}:r=${fps}:maxiter=120:end_pts=30`;
      break;
    case "life":
      base = `life=s=${kClipSize}:r=${fps}:mold=10:ratio=0.12:seed=7:life_color=#f0f0f0:death_color=#303030`;
      break;
    case "testsrc":
      base = `testsrc=s=${kClipSize}:r=${fps}`;
      break;
    case "cellauto":
      base = `cellauto=s=${kClipSize}:r=${fps}:rule=110:seed=3`;
      break;
  }
  if (!scene.box) return `${base},${tail}[out]`;
  const { from, to } = scene.box;
  // x stays put, slides 200 px between `from` and `to`, then stays put again.
  const x = `if(lt(t,${from}),20,if(lt(t,${to}),20+(t-${from})*${(200 / (to - from)).toFixed(3)},220))`;
  return `${base},${tail}[bg];color=c=white:s=64x64:r=${fps}[box];[bg][box]overlay=x='${x}':y=88:shortest=1,format=yuv420p[out]`;
}

/**
 * Renders a clip from ffmpeg's test sources to an H.264 MP4: each scene separately, then joined
 * without re-encoding (joining sources inside one filter graph can run forever on some builds).
 */
export async function renderClip(spec: ClipSpec, file: string): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), "streamfn-clip-"));
  try {
    const parts: string[] = [];
    for (const [i, scene] of spec.scenes.entries()) {
      const part = join(work, `scene-${i}.mp4`);
      await runFfmpeg(["-loglevel", "error", "-y", "-filter_complex", sceneGraph(scene, spec.fps), "-map", "[out]", "-frames:v", String(Math.round(scene.seconds * spec.fps)), "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-g", String(spec.fps), "-r", String(spec.fps), part]);
      parts.push(part);
    }
    const list = join(work, "list.txt");
    await writeFile(list, parts.map((p) => `file '${p}'\n`).join(""));
    const tmp = `${file}.${process.pid}.tmp.mp4`;
    await runFfmpeg(["-loglevel", "error", "-y", "-f", "concat", "-safe", "0", "-i", list, "-c", "copy", tmp]);
    await rename(tmp, file);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** A clip decoded into the frames a producer sends. */
export interface DecodedClip {
  name: string;
  fps: number;
  width: number;
  height: number;
  format: FrameFormat;
  frames: Uint8Array[];
}

/** Splits ffmpeg's MJPEG pipe output into single JPEG images (FFD8 … FFD9). */
export function splitJpegs(stream: Buffer): Uint8Array[] {
  const frames: Uint8Array[] = [];
  let start = stream.indexOf(Buffer.from([0xff, 0xd8]));
  while (start >= 0) {
    // Inside entropy-coded data a 0xFF byte is always followed by 0x00 or a restart marker,
    // so the first FFD9 after the start is this image's end.
    const end = stream.indexOf(Buffer.from([0xff, 0xd9]), start + 2);
    if (end < 0) break;
    frames.push(new Uint8Array(stream.subarray(start, end + 2)));
    start = stream.indexOf(Buffer.from([0xff, 0xd8]), end + 2);
  }
  return frames;
}

/**
 * Decodes any video file ffmpeg reads into wire frames: JPEGs 320 px wide (the function decodes
 * and shrinks them), or raw gray at the analysis size (160×120, no decoding left to do).
 */
export async function decodeClip(file: string, format: FrameFormat, name = file): Promise<DecodedClip> {
  const common = ["-i", file, "-an", "-sn"];
  if (format === "gray") {
    const { stdout, stderr } = await runFfmpeg([...common, "-vf", `scale=${kAnalysisWidth}:${kAnalysisHeight},format=gray`, "-f", "rawvideo", "-"]);
    const size = kAnalysisWidth * kAnalysisHeight;
    const frames: Uint8Array[] = [];
    for (let o = 0; o + size <= stdout.byteLength; o += size) frames.push(new Uint8Array(stdout.subarray(o, o + size)));
    return { name, fps: inputFps(stderr), width: kAnalysisWidth, height: kAnalysisHeight, format, frames };
  }
  const { stdout, stderr } = await runFfmpeg([...common, "-vf", "scale=320:-2", "-pix_fmt", "yuvj420p", "-c:v", "mjpeg", "-q:v", "5", "-f", "image2pipe", "-"]);
  const size = /Video: mjpeg[^\n]*?, (\d+)x(\d+)/.exec(stderr.slice(stderr.indexOf("Output #0")));
  return { name, fps: inputFps(stderr), width: Number(size?.[1] ?? 320), height: Number(size?.[2] ?? 240), format, frames: splitJpegs(stdout) };
}

/** The input's frame rate from ffmpeg's stream description ("… 30 fps, …" or "… 25 tbr"). */
function inputFps(stderr: string): number {
  const input = stderr.slice(stderr.indexOf("Input #0"), stderr.indexOf("Output #0") >= 0 ? stderr.indexOf("Output #0") : undefined);
  const m = /Video:[^\n]*?, ([\d.]+) fps/.exec(input) ?? /Video:[^\n]*?, ([\d.]+) tbr/.exec(input);
  const fps = m ? Number(m[1]) : NaN;
  return Number.isFinite(fps) && fps > 0 ? fps : 30;
}
