// The always-on stream job: one long-running process that consumes every clip (one WebSocket
// connection per clip, the same wire format as streamfn) and keeps each clip's state in memory
// while it plays — what a stream-engine deployment does, minus the engine. It runs whether or
// not any clip is playing.
import { WebSocketServer } from "ws";
import type { WebSocket } from "ws";
import { ClipAnalyzer, parseClipHeader } from "../../examples/video/lib/analysis.js";

const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false });

function serve(ws: WebSocket): void {
  let analyzer: ClipAnalyzer | undefined;
  let n = 0;
  let events = 0;
  // Frames of one clip are analysed strictly in order, one at a time.
  let chain: Promise<void> = Promise.resolve();
  const send = (data: unknown): void => ws.send(JSON.stringify({ type: "output", n: ++n, data }));
  const fail = (err: unknown): void => {
    ws.send(JSON.stringify({ type: "end", status: "failed", reason: "error", events, outputs: n, error: { code: "HANDLER_ERROR", message: String(err) } }));
    ws.close(1000);
  };
  ws.on("message", (data: Buffer, isBinary: boolean) => {
    chain = chain
      .then(async () => {
        if (isBinary) {
          events++;
          analyzer ??= new ClipAnalyzer({ clip: "clip", fps: 30, width: 320, height: 240, format: "jpeg" });
          send(await analyzer.frame(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)));
          return;
        }
        const msg = JSON.parse(data.toString()) as { data?: unknown; end?: boolean };
        if (msg.end) {
          if (analyzer) send({ summary: analyzer.finish() });
          ws.send(JSON.stringify({ type: "end", status: "completed", reason: "end", events, outputs: n }));
          ws.close(1000);
          return;
        }
        events++;
        analyzer = new ClipAnalyzer(parseClipHeader(msg.data));
      })
      .catch(fail);
  });
}

wss.on("connection", (ws) => serve(ws));
wss.on("listening", () => console.log(`stream job listening on ${(wss.address() as { port: number }).port}`));
process.on("SIGTERM", () => wss.close(() => process.exit(0)));
