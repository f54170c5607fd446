// Demo and benchmark clips: random (but seeded, so reproducible) sequences of ffmpeg test-source
// scenes — still ones, ones where a box moves for a while, ones that move all the time — joined
// with hard cuts. Rendered once into a cache directory, then decoded like any user file.
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { FrameFormat } from "./analysis.js";
import { decodeClip, renderClip } from "./ffmpeg.js";
import type { ClipSpec, DecodedClip, SceneSpec } from "./ffmpeg.js";

/** A small deterministic PRNG (mulberry32): the same seed gives the same clips everywhere. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const kStill: SceneSpec["kind"][] = ["bars", "gray"];
const kMoving: SceneSpec["kind"][] = ["mandelbrot", "life", "testsrc", "cellauto"];

/** One clip of about `seconds`, made of 1–3 s scenes of alternating kinds. */
export function randomClipSpec(name: string, seconds: number, random: () => number, fps = 30): ClipSpec {
  const scenes: SceneSpec[] = [];
  let left = Math.round(seconds * fps) / fps;
  let previous: SceneSpec["kind"] | undefined;
  while (left > 0.001) {
    let len = Math.min(left, 1 + Math.round(random() * 20) / 10);
    if (left - len < 0.8) len = left; // no sliver of a scene at the end
    const pool = [...kStill, ...kMoving].filter((k) => k !== previous);
    const kind = pool[Math.floor(random() * pool.length)]!;
    const scene: SceneSpec = { kind, seconds: Math.round(len * fps) / fps };
    if (kStill.includes(kind) && len >= 1) {
      const from = Math.round((0.2 + random() * (len - 0.9)) * 10) / 10;
      scene.box = { from, to: Math.round((from + 0.4 + random() * 0.3) * 10) / 10 };
    }
    scenes.push(scene);
    previous = kind;
    left -= scene.seconds;
  }
  return { name, fps, scenes };
}

/** `count` clips with lengths drawn uniformly from [minS, maxS]. */
export function randomClipSpecs(count: number, seed: number, minS: number, maxS: number): ClipSpec[] {
  const random = seededRandom(seed);
  return Array.from({ length: count }, (_, i) => {
    const seconds = Math.round((minS + random() * (maxS - minS)) * 10) / 10;
    return randomClipSpec(`clip-${String(i + 1).padStart(2, "0")}`, seconds, random);
  });
}

/** Frame numbers where the spec's scenes change: where a cut detector should fire. */
export function expectedCuts(spec: ClipSpec): number[] {
  const cuts: number[] = [];
  let frame = 0;
  for (const scene of spec.scenes.slice(0, -1)) {
    frame += Math.round(scene.seconds * spec.fps);
    cuts.push(frame);
  }
  return cuts;
}

/** Renders the spec into `cacheDir` unless already there; returns the MP4's path. */
export async function clipFile(spec: ClipSpec, cacheDir: string): Promise<string> {
  const key = createHash("sha256").update(JSON.stringify(spec)).digest("hex").slice(0, 12);
  const file = join(cacheDir, `${spec.name}-${key}.mp4`);
  if (!existsSync(file)) {
    await mkdir(cacheDir, { recursive: true });
    await renderClip(spec, file);
  }
  return file;
}

/** Renders (cached) and decodes a generated clip into wire frames. */
export async function generatedClip(spec: ClipSpec, format: FrameFormat, cacheDir: string): Promise<DecodedClip> {
  return decodeClip(await clipFile(spec, cacheDir), format, spec.name);
}
