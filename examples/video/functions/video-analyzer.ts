import { defineStreamFunction } from "streamfn";
import { ClipAnalyzer, parseClipHeader } from "../lib/analysis.js";
import type { ClipHeader, ClipSummary, FrameResult } from "../lib/analysis.js";

// One video clip = one stream. An optional JSON clip header comes first, then one binary event
// per frame (JPEG, or raw 8-bit gray of the header's size). Every frame gets its result back
// while the clip still plays (motion, and cut / motion-start / motion-end events as they are
// detected); after the last frame comes the clip's summary. The state across frames (the
// previous frame, the open motion segment, cuts and keyframes) is the local `analyzer`.
const kDefaultHeader: ClipHeader = { clip: "clip", fps: 30, width: 320, height: 240, format: "jpeg" };

export default defineStreamFunction<Uint8Array | unknown, FrameResult | { summary: ClipSummary }>({
  idleTimeoutMs: 5_000,
  maxEventBytes: 4 * 1024 * 1024,
  async *handler(events, ctx) {
    let analyzer: ClipAnalyzer | undefined;
    for await (const event of events) {
      if (!(event instanceof Uint8Array)) {
        if (analyzer?.framesSeen) throw new TypeError("the clip header must come before the first frame");
        analyzer = new ClipAnalyzer(parseClipHeader(event));
        continue;
      }
      analyzer ??= new ClipAnalyzer({ ...kDefaultHeader, clip: ctx.streamId });
      yield await analyzer.frame(event);
    }
    if (analyzer) yield { summary: analyzer.finish() };
  },
});
