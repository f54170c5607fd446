// The per-frame video analysis shared by every way of running it (the stream function, the
// per-event and batch FaaS baselines, the always-on stream job and the in-process reference),
// so that their detections can be compared exactly. State is explicit and serialisable: the
// stream function keeps the analyzer in a local variable, the per-event baseline round-trips
// it through Redis between frames.
import sharp from "sharp";
import type { Sharp } from "sharp";

/** Frames are analysed at this size, in 8-bit gray. */
export const kAnalysisWidth = 160;
export const kAnalysisHeight = 120;
const kPixels = kAnalysisWidth * kAnalysisHeight;

/** A pixel counts as changed when its gray level moved by more than this. */
const kPixelDelta = 24;
/** Share of changed pixels from which a frame counts as moving. */
const kMotionOn = 0.01;
/** Consecutive moving frames that open a motion segment. */
const kStartFrames = 2;
/** Consecutive still frames that close it (the segment ends at the last moving frame). */
const kEndFrames = 6;
/** A scene cut: the gray histogram jumps (half L1 distance) and most pixels change at once. */
const kCutHistogram = 0.25;
const kCutChanged = 0.25;
const kBins = 32;

export type FrameFormat = "jpeg" | "gray";

/** The optional first (JSON) event of a clip's stream: what the binary frames that follow are. */
export interface ClipHeader {
  clip: string;
  fps: number;
  /** Size of the frames as sent (for `gray`, required to read them). */
  width: number;
  height: number;
  format: FrameFormat;
  /** How many frames the producer will send, when known (for progress only). */
  frames?: number;
}

export type FrameEvent =
  | { type: "cut"; frame: number; keyframe: string }
  | { type: "motion-start"; frame: number }
  | { type: "motion-end"; start: number; end: number };

/** What the analysis says about one frame, yielded while the clip still plays. */
export interface FrameResult {
  frame: number;
  /** Share of pixels that changed against the previous frame (0…1, 4 decimals). */
  motion: number;
  events?: FrameEvent[];
  /** Time the per-frame code took for this frame, microseconds (decode included). */
  us: number;
}

export interface Segment {
  start: number;
  end: number;
}

export interface ClipSummary {
  clip: string;
  frames: number;
  fps: number;
  durationS: number;
  cuts: number[];
  segments: Segment[];
  /** Frame 0 and every frame after a cut, with a 64-bit difference hash of its content. */
  keyframes: { frame: number; hash: string }[];
  /** Frames whose motion crossed the moving threshold. */
  movingFrames: number;
  meanMotion: number;
  /** Total time of the per-frame code for this clip, summary included, milliseconds. */
  computeMs: number;
}

/** What a verdict comparison looks at: everything but timings. */
export function detections(summary: ClipSummary): Omit<ClipSummary, "computeMs"> {
  const { computeMs: _ignored, ...rest } = summary;
  return rest;
}

interface PersistedState {
  header: ClipHeader;
  n: number;
  moving: boolean;
  runOn: number;
  runOff: number;
  segStart: number;
  lastMoving: number;
  cuts: number[];
  segments: Segment[];
  keyframes: { frame: number; hash: string }[];
  movingFrames: number;
  motionSum: number;
  computeUs: number;
}

let sharpConfigured = false;
function configureSharp(): void {
  if (sharpConfigured) return;
  sharpConfigured = true;
  // Every frame is a new image: libvips' operation cache would only hold memory.
  sharp.cache(false);
}

const isJpeg = (b: Uint8Array): boolean => b.byteLength > 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;

/** Checks a clip header from the wire; throws a TypeError naming what is wrong. */
export function parseClipHeader(value: unknown): ClipHeader {
  if (typeof value !== "object" || value === null) throw new TypeError("clip header must be a JSON object");
  const v = value as Record<string, unknown>;
  const format = v.format ?? "jpeg";
  if (format !== "jpeg" && format !== "gray") throw new TypeError(`clip header: format must be "jpeg" or "gray", got ${JSON.stringify(format)}`);
  const num = (k: string, dflt?: number): number => {
    const x = v[k] ?? dflt;
    if (typeof x !== "number" || !Number.isFinite(x) || x <= 0) throw new TypeError(`clip header: ${k} must be a positive number, got ${JSON.stringify(v[k])}`);
    return x;
  };
  const header: ClipHeader = {
    clip: typeof v.clip === "string" ? v.clip : "clip",
    fps: num("fps", 30),
    width: Math.round(num("width", kAnalysisWidth)),
    height: Math.round(num("height", kAnalysisHeight)),
    format,
  };
  if (typeof v.frames === "number") header.frames = v.frames;
  return header;
}

/** Decodes one wire frame (JPEG or raw gray of the header's size) to analysis-size gray. */
export async function toAnalysisGray(frame: Uint8Array, header: ClipHeader): Promise<Uint8Array> {
  configureSharp();
  let image: Sharp;
  if (isJpeg(frame)) {
    image = sharp(frame);
  } else {
    if (header.format !== "gray") throw new TypeError(`frame is not a JPEG (clip format is ${header.format})`);
    if (frame.byteLength !== header.width * header.height) {
      throw new TypeError(`gray frame has ${frame.byteLength} bytes, expected ${header.width}×${header.height} = ${header.width * header.height}`);
    }
    if (header.width === kAnalysisWidth && header.height === kAnalysisHeight) return frame;
    image = sharp(frame, { raw: { width: header.width, height: header.height, channels: 1 } });
  }
  const out = await image.resize(kAnalysisWidth, kAnalysisHeight, { fit: "fill" }).toColourspace("b-w").raw().toBuffer();
  if (out.byteLength !== kPixels) throw new Error(`decoder returned ${out.byteLength} bytes, expected ${kPixels}`);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

function histogram(gray: Uint8Array): Float64Array {
  const h = new Float64Array(kBins);
  const shift = 8 - Math.log2(kBins);
  for (let i = 0; i < gray.length; i++) h[gray[i]! >> shift]!++;
  for (let b = 0; b < kBins; b++) h[b]! /= gray.length;
  return h;
}

function histogramDistance(a: Float64Array, b: Float64Array): number {
  let d = 0;
  for (let i = 0; i < kBins; i++) d += Math.abs(a[i]! - b[i]!);
  return d / 2;
}

function changedShare(a: Uint8Array, b: Uint8Array): number {
  let changed = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    if (d > kPixelDelta || d < -kPixelDelta) changed++;
  }
  return changed / a.length;
}

/** A 64-bit difference hash: 9×8 box means, one bit per horizontal neighbour pair, as hex. */
export function differenceHash(gray: Uint8Array, width = kAnalysisWidth, height = kAnalysisHeight): string {
  const cells = new Float64Array(9 * 8);
  for (let cy = 0; cy < 8; cy++) {
    const y0 = Math.floor((cy * height) / 8);
    const y1 = Math.floor(((cy + 1) * height) / 8);
    for (let cx = 0; cx < 9; cx++) {
      const x0 = Math.floor((cx * width) / 9);
      const x1 = Math.floor(((cx + 1) * width) / 9);
      let sum = 0;
      for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) sum += gray[y * width + x]!;
      cells[cy * 9 + cx] = sum / ((y1 - y0) * (x1 - x0));
    }
  }
  let hex = "";
  for (let cy = 0; cy < 8; cy++) {
    let byte = 0;
    for (let cx = 0; cx < 8; cx++) byte = (byte << 1) | (cells[cy * 9 + cx]! > cells[cy * 9 + cx + 1]! ? 1 : 0);
    hex += byte.toString(16).padStart(2, "0");
  }
  return hex;
}

const round4 = (x: number): number => Math.round(x * 10_000) / 10_000;

/**
 * The state of one clip's analysis across its frames: the previous frame, the open motion
 * segment, the cuts and keyframes so far. Feed frames in order with `frame()`, then call
 * `finish()` once for the summary.
 */
export class ClipAnalyzer {
  readonly #s: PersistedState;
  #prev: Uint8Array | undefined;
  #prevHist: Float64Array | undefined;

  constructor(header: ClipHeader, state?: PersistedState, prev?: Uint8Array) {
    this.#s = state ?? {
      header,
      n: 0,
      moving: false,
      runOn: 0,
      runOff: 0,
      segStart: -1,
      lastMoving: -1,
      cuts: [],
      segments: [],
      keyframes: [],
      movingFrames: 0,
      motionSum: 0,
      computeUs: 0,
    };
    if (prev) {
      this.#prev = prev;
      this.#prevHist = histogram(prev);
    }
  }

  get header(): ClipHeader {
    return this.#s.header;
  }

  get framesSeen(): number {
    return this.#s.n;
  }

  /** Analyses the next frame of the clip. */
  async frame(bytes: Uint8Array): Promise<FrameResult> {
    const started = performance.now();
    const s = this.#s;
    const gray = await toAnalysisGray(bytes, s.header);
    const hist = histogram(gray);
    const i = s.n;
    const events: FrameEvent[] = [];
    let motion = 0;
    if (!this.#prev || !this.#prevHist) {
      s.keyframes.push({ frame: i, hash: differenceHash(gray) });
    } else {
      motion = changedShare(gray, this.#prev);
      const jump = histogramDistance(hist, this.#prevHist);
      if (jump > kCutHistogram && motion > kCutChanged) {
        // A new scene: what changed is the picture, not something moving in it.
        const hash = differenceHash(gray);
        s.cuts.push(i);
        s.keyframes.push({ frame: i, hash });
        events.push({ type: "cut", frame: i, keyframe: hash });
        if (s.moving) events.push(this.#closeSegment());
        s.runOn = 0;
        motion = 0;
      } else {
        this.#track(i, motion >= kMotionOn, events);
      }
    }
    if (motion >= kMotionOn) s.movingFrames++;
    s.motionSum += motion;
    s.n++;
    this.#prev = gray;
    this.#prevHist = hist;
    const us = Math.round((performance.now() - started) * 1000);
    s.computeUs += us;
    return events.length ? { frame: i, motion: round4(motion), events, us } : { frame: i, motion: round4(motion), us };
  }

  /** Closes an open segment and summarises the clip. Call once, after the last frame. */
  finish(): ClipSummary {
    const started = performance.now();
    const s = this.#s;
    if (s.moving) this.#closeSegment();
    s.computeUs += Math.round((performance.now() - started) * 1000);
    return {
      clip: s.header.clip,
      frames: s.n,
      fps: s.header.fps,
      durationS: Math.round((s.n / s.header.fps) * 1000) / 1000,
      cuts: [...s.cuts],
      segments: s.segments.map((g) => ({ ...g })),
      keyframes: s.keyframes.map((k) => ({ ...k })),
      movingFrames: s.movingFrames,
      meanMotion: s.n ? round4(s.motionSum / s.n) : 0,
      computeMs: Math.round(s.computeUs) / 1000,
    };
  }

  /** The whole state as bytes: JSON, then the previous frame (for stores such as Redis). */
  toBytes(): Buffer {
    const json = Buffer.from(JSON.stringify(this.#s));
    const prev = this.#prev ?? new Uint8Array(0);
    const out = Buffer.allocUnsafe(4 + json.byteLength + prev.byteLength);
    out.writeUInt32BE(json.byteLength, 0);
    json.copy(out, 4);
    out.set(prev, 4 + json.byteLength);
    return out;
  }

  static fromBytes(bytes: Uint8Array): ClipAnalyzer {
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const len = buf.readUInt32BE(0);
    const state = JSON.parse(buf.subarray(4, 4 + len).toString()) as PersistedState;
    const prev = buf.byteLength > 4 + len ? new Uint8Array(buf.subarray(4 + len)) : undefined;
    return new ClipAnalyzer(state.header, state, prev);
  }

  #track(i: number, active: boolean, events: FrameEvent[]): void {
    const s = this.#s;
    if (!s.moving) {
      s.runOn = active ? s.runOn + 1 : 0;
      if (s.runOn >= kStartFrames) {
        s.moving = true;
        s.segStart = i - kStartFrames + 1;
        s.lastMoving = i;
        s.runOff = 0;
        events.push({ type: "motion-start", frame: s.segStart });
      }
      return;
    }
    if (active) {
      s.lastMoving = i;
      s.runOff = 0;
    } else if (++s.runOff >= kEndFrames) {
      events.push(this.#closeSegment());
    }
  }

  #closeSegment(): FrameEvent {
    const s = this.#s;
    const segment = { start: s.segStart, end: s.lastMoving };
    s.segments.push(segment);
    s.moving = false;
    s.runOn = 0;
    s.runOff = 0;
    return { type: "motion-end", ...segment };
  }
}
