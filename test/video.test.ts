import { strict as assert } from "node:assert";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { ClipAnalyzer, detections } from "../examples/video/lib/analysis.js";
import { expectedCuts, generatedClip } from "../examples/video/lib/clips.js";
import type { ClipSpec, DecodedClip } from "../examples/video/lib/ffmpeg.js";
import { streamClip } from "../examples/video/lib/producer.js";
import { StreamfnServer } from "../src/server/server.js";
import { silentLogger } from "../src/server/logger.js";
import { StreamClient } from "./helpers/ws-client.js";

// The video example end to end: a clip rendered by ffmpeg from its test sources (a still scene
// in which a box slides for a while, then a hard cut to a busy scene), decoded into JPEG and raw
// gray frames, streamed frame by frame over WebSocket to the real server running
// examples/video/functions/video-analyzer.ts.
const functionsDir = fileURLToPath(new URL("../../examples/video/functions", import.meta.url));
const spec: ClipSpec = {
  name: "test-clip",
  fps: 30,
  scenes: [
    { kind: "gray", seconds: 0.9, box: { from: 0.2, to: 0.6 } },
    { kind: "life", seconds: 0.6 },
  ],
};

async function reference(clip: DecodedClip) {
  const analyzer = new ClipAnalyzer({ clip: clip.name, fps: clip.fps, width: clip.width, height: clip.height, format: clip.format });
  for (const f of clip.frames) await analyzer.frame(f);
  return analyzer.finish();
}

describe("video example", () => {
  let server: StreamfnServer;
  let cacheDir: string;
  let ws: string;
  before(async () => {
    cacheDir = await mkdtemp(join(tmpdir(), "streamfn-video-test-"));
    server = await StreamfnServer.start({ functionsDir, port: 0, host: "127.0.0.1", graceMs: 0, logger: silentLogger() });
    ws = `${server.url.replace(/^http/, "ws")}/v1/functions/video-analyzer/streams`;
  });
  after(async () => {
    await server.close();
    await rm(cacheDir, { recursive: true, force: true });
  });

  for (const format of ["jpeg", "gray"] as const) {
    it(`detects the generated clip's scene cut and moving box from ${format} frames, as the in-process analysis does`, async () => {
      const clip = await generatedClip(spec, format, cacheDir);
      assert.equal(clip.frames.length, 45);
      const run = await streamClip(clip, { url: `${ws}/${format}-clip`, realtime: false, retryForMs: 30_000 });
      const summary = run.summary!;
      assert.deepEqual(expectedCuts(spec), [27]);
      assert.deepEqual(summary.cuts, [27]);
      assert.equal(summary.frames, 45);
      assert.equal(summary.keyframes.length, 2);
      // the box slides between 0.2 s and 0.6 s of the first scene: frames 6–18
      assert.equal(summary.segments.length >= 1, true, JSON.stringify(summary.segments));
      const box = summary.segments[0]!;
      assert.ok(box.start >= 4 && box.start <= 9 && box.end >= 15 && box.end < 27, JSON.stringify(box));
      // one result per frame, in order, carrying the cut while the clip was still streaming
      assert.deepEqual(run.results.map((r) => r.frame), Array.from({ length: 45 }, (_, i) => i));
      assert.deepEqual(run.results[27]!.events?.map((e) => e.type), ["cut"]);
      assert.deepEqual(detections(summary), detections(await reference(clip)));
    });
  }

  it("fails the stream with the handler's message when a frame is not a picture", async () => {
    const c = await StreamClient.connect(`${ws}/bad-frame`);
    c.event({ clip: "bad", fps: 30, width: 320, height: 240, format: "jpeg" });
    c.binary(new Uint8Array([1, 2, 3, 4]));
    const end = await c.waitEnd(30_000);
    assert.equal(end.status, "failed");
    assert.match(String((end.error as { message: string }).message), /not a JPEG/);
  });
});
