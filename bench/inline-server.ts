// A reference point measured in the same run as the platform: the simplest WebSocket server
// that could serve the same function, running its handler inline on the server's one thread.
// No router, instances, limits or isolation: what "naive single-process ws server" means.
// It speaks the same records, so the same load generator drives it.
import type { AddressInfo } from "node:net";
import { WebSocketServer } from "ws";
import type { WebSocket } from "ws";
import type { StreamFunction } from "../src/api/types.js";
import { preciseNow } from "../src/runtime/clock.js";
import { StreamRun } from "../src/runtime/stream-driver.js";

const kQuietLog = { info() {}, warn() {}, error() {} };

export async function startInlineServer(fn: StreamFunction): Promise<{ port: number; close(): Promise<void> }> {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false });
  await new Promise<void>((resolve) => wss.once("listening", () => resolve()));
  let nextId = 1;
  wss.on("connection", (ws: WebSocket) => serve(ws, fn, `inline-${nextId++}`));
  return {
    port: (wss.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const ws of wss.clients) ws.terminate();
        wss.close(() => resolve());
      }),
  };
}

function serve(ws: WebSocket, fn: StreamFunction, streamId: string): void {
  let outputs = 0;
  let events = 0;
  const sink = {
    output(value: unknown): void {
      outputs++;
      if (value instanceof Uint8Array) {
        ws.send(`{"type":"output","n":${outputs},"binary":true}`);
        ws.send(value, { binary: true });
      } else {
        ws.send(`{"type":"output","n":${outputs},"data":${JSON.stringify(value) ?? "null"}}`);
      }
    },
    pulled(): void {},
  };
  const run = new StreamRun("echo", streamId, sink, kQuietLog);
  ws.send(`{"type":"open","function":"echo","streamId":"${streamId}","version":"inline"}`);
  ws.on("message", (data: Buffer, isBinary: boolean) => {
    if (isBinary) {
      run.channel.push({ d: new Uint8Array(data), q: ++events, t: preciseNow() });
      return;
    }
    const env = JSON.parse(data.toString("utf8")) as { data?: unknown; end?: true };
    if (env.end) run.channel.end("end");
    else run.channel.push({ d: env.data, q: ++events, t: preciseNow() });
  });
  ws.on("close", () => run.channel.end("end"));
  run.drive(fn, sink).then(
    () => {
      ws.send(JSON.stringify({ type: "end", status: "completed", reason: "end", events, outputs }));
      ws.close(1000);
    },
    (err: unknown) => {
      ws.send(JSON.stringify({ type: "end", status: "failed", reason: "error", events, outputs, error: { code: "HANDLER_ERROR", message: String(err) } }));
      ws.close(1000);
    },
  );
}
