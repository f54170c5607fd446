// The two FaaS baselines as HTTP functions for Google's functions framework, running the same
// per-frame code (examples/video/lib/analysis.ts) as the stream function.
//
// videoFrame — per-event: one invocation per frame. The clip's state (previous frame, open
//   motion segment, cuts, keyframes) lives in Redis between invocations: read, update, write
//   back. A request with `x-end: 1` finishes the clip and returns its summary.
// videoClip — batch: one invocation per clip, after its last frame, with every frame in the body.
import type { Request, Response } from "@google-cloud/functions-framework";
import { Redis } from "ioredis";
import { ClipAnalyzer, parseClipHeader } from "../../examples/video/lib/analysis.js";
import type { FrameResult } from "../../examples/video/lib/analysis.js";

let redis: Redis | undefined;
/** One connection per instance, reused across invocations (the usual FaaS practice). */
function store(): Redis {
  redis ??= new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379", { lazyConnect: false, maxRetriesPerRequest: 2 });
  return redis;
}

const kStateTtlS = 600;

function clipHeader(req: Request): ReturnType<typeof parseClipHeader> {
  const raw = req.get("x-clip-header");
  if (!raw) throw new TypeError("missing x-clip-header");
  return parseClipHeader(JSON.parse(raw));
}

function body(req: Request): Uint8Array {
  const b = req.body as unknown;
  if (Buffer.isBuffer(b)) return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  if (req.rawBody) return new Uint8Array(req.rawBody);
  throw new TypeError("expected an application/octet-stream body");
}

export async function videoFrame(req: Request, res: Response): Promise<void> {
  try {
    const header = clipHeader(req);
    const key = `video:${header.clip}`;
    const saved = await store().getBuffer(key);
    const analyzer = saved ? ClipAnalyzer.fromBytes(saved) : new ClipAnalyzer(header);
    if (req.get("x-end") === "1") {
      const summary = analyzer.finish();
      await store().del(key);
      res.json({ summary });
      return;
    }
    const result = await analyzer.frame(body(req));
    await store().set(key, analyzer.toBytes(), "EX", kStateTtlS);
    res.json(result);
  } catch (err) {
    res.status(400).json({ error: String(err) });
  }
}

/** Splits a batch body: each frame is a 4-byte big-endian length, then its bytes. */
export function splitFrames(bytes: Uint8Array): Uint8Array[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const frames: Uint8Array[] = [];
  for (let o = 0; o + 4 <= bytes.byteLength; ) {
    const len = view.getUint32(o);
    frames.push(bytes.subarray(o + 4, o + 4 + len));
    o += 4 + len;
  }
  return frames;
}

export function joinFrames(frames: Uint8Array[]): Buffer {
  const total = frames.reduce((a, f) => a + 4 + f.byteLength, 0);
  const out = Buffer.allocUnsafe(total);
  let o = 0;
  for (const f of frames) {
    out.writeUInt32BE(f.byteLength, o);
    out.set(f, o + 4);
    o += 4 + f.byteLength;
  }
  return out;
}

export async function videoClip(req: Request, res: Response): Promise<void> {
  try {
    const analyzer = new ClipAnalyzer(clipHeader(req));
    const results: FrameResult[] = [];
    for (const frame of splitFrames(body(req))) results.push(await analyzer.frame(frame));
    res.json({ results, summary: analyzer.finish() });
  } catch (err) {
    res.status(400).json({ error: String(err) });
  }
}
