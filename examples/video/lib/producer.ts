// A camera stand-in: streams one decoded clip to a stream function over WebSocket at the clip's
// frame rate (or as fast as the connection takes it), and records when each frame was due,
// when it was sent and when its result came back. Every time is this process's
// performance.now(), so no clocks across processes are compared.
import { WebSocket } from "ws";
import type { ClipSummary, FrameResult } from "./analysis.js";
import type { DecodedClip } from "./ffmpeg.js";

export interface ClipRun {
  clip: string;
  frames: number;
  /** When the producer started on the clip: the clip's first frame exists from then on. */
  startedAt: number;
  /** When frame i existed: startedAt + i / fps when paced, startedAt when not. */
  due: number[];
  /** When the producer had frame i in hand (its timer fired): `due` plus timer slack. */
  readyAt: number[];
  sentAt: number[];
  /** When frame i's result arrived. */
  resultAt: number[];
  results: FrameResult[];
  summary: ClipSummary | undefined;
  summaryAt: number;
}

export interface StreamClipOptions {
  /** WebSocket URL of the stream, e.g. ws://127.0.0.1:8080/v1/functions/video-analyzer/streams/clip-1 */
  url: string;
  /** Send at the clip's frame rate (default) or as fast as the connection takes the frames. */
  realtime?: boolean;
  headers?: Record<string, string>;
  onSent?: (frame: number) => void;
  onResult?: (result: FrameResult) => void;
  /** Connection attempts refused with 503 (no capacity right now) are retried this long. Default 10 s. */
  retryForMs?: number;
}

const kMaxBuffered = 1 << 20;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function connect(url: string, headers: Record<string, string>, retryForMs: number): Promise<WebSocket> {
  const deadline = performance.now() + retryForMs;
  for (;;) {
    try {
      return await new Promise<WebSocket>((resolve, reject) => {
        const ws = new WebSocket(url, { headers, perMessageDeflate: false });
        ws.once("open", () => resolve(ws));
        ws.once("unexpected-response", (_req, res) => {
          let body = "";
          res.on("data", (c: Buffer) => (body += c.toString()));
          res.on("end", () => reject(Object.assign(new Error(`${url} refused the stream: ${res.statusCode} ${body}`), { status: res.statusCode, retryAfter: Number(res.headers["retry-after"] ?? 1) })));
        });
        ws.once("error", reject);
      });
    } catch (err) {
      const e = err as { status?: number; retryAfter?: number };
      if (e.status !== 503 || performance.now() > deadline) throw err;
      await sleep(Math.min(1000, (e.retryAfter ?? 1) * 1000));
    }
  }
}

/** An empty record for one clip; frame i is due `i / fps` after now (paced) or now (not). */
export function newClipRun(clip: DecodedClip, realtime: boolean): ClipRun {
  const startedAt = performance.now();
  const n = clip.frames.length;
  return {
    clip: clip.name,
    frames: n,
    startedAt,
    due: clip.frames.map((_, i) => (realtime ? startedAt + (i * 1000) / clip.fps : startedAt)),
    readyAt: new Array<number>(n).fill(NaN),
    sentAt: new Array<number>(n).fill(NaN),
    resultAt: new Array<number>(n).fill(NaN),
    results: [],
    summary: undefined,
    summaryAt: NaN,
  };
}

/** Waits until frame i is due; records and returns when the producer had it. */
export async function frameReady(run: ClipRun, i: number, realtime: boolean): Promise<number> {
  if (realtime) {
    const wait = run.due[i]! - performance.now();
    if (wait > 0) await sleep(wait);
  }
  run.readyAt[i] = realtime ? Math.max(run.due[i]!, performance.now()) : run.due[i]!;
  return run.readyAt[i]!;
}

/** Streams the clip: a JSON clip header, one binary event per frame, then the end. */
export async function streamClip(clip: DecodedClip, opts: StreamClipOptions): Promise<ClipRun> {
  const realtime = opts.realtime ?? true;
  const run = newClipRun(clip, realtime);
  const n = run.frames;
  const ws = await connect(opts.url, opts.headers ?? {}, opts.retryForMs ?? 10_000);
  const done = new Promise<void>((resolve, reject) => {
    let failure: Error | undefined;
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (isBinary) return;
      const now = performance.now();
      const rec = JSON.parse(data.toString()) as { type: string; data?: unknown; status?: string; reason?: string; error?: { code: string; message: string }; code?: string; message?: string };
      if (rec.type === "output") {
        const out = rec.data as FrameResult | { summary: ClipSummary };
        if ("summary" in out) {
          run.summary = out.summary;
          run.summaryAt = now;
        } else {
          run.results.push(out);
          run.resultAt[out.frame] = now;
          opts.onResult?.(out);
        }
      } else if (rec.type === "error") {
        failure ??= new Error(`${clip.name}: ${rec.code}: ${rec.message}`);
      } else if (rec.type === "end" && rec.status !== "completed") {
        failure = new Error(`${clip.name}: stream ${rec.status} (${rec.reason})${rec.error ? `: ${rec.error.code}: ${rec.error.message}` : ""}`);
      }
    });
    ws.on("error", (err) => (failure ??= err));
    ws.on("close", () => (failure ? reject(failure) : resolve()));
  });
  ws.send(JSON.stringify({ data: { clip: clip.name, fps: clip.fps, width: clip.width, height: clip.height, format: clip.format, frames: n } }));
  for (let i = 0; i < n && ws.readyState === WebSocket.OPEN; i++) {
    await frameReady(run, i, realtime);
    while (ws.bufferedAmount > kMaxBuffered && ws.readyState === WebSocket.OPEN) await sleep(1);
    ws.send(clip.frames[i]!, { binary: true });
    run.sentAt[i] = performance.now();
    opts.onSent?.(i);
  }
  if (ws.readyState === WebSocket.OPEN) ws.send('{"end":true}');
  await done;
  if (!run.summary) throw new Error(`${clip.name}: the stream ended without a summary`);
  return run;
}
