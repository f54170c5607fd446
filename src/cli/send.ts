import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import { WebSocket } from "ws";
import { StreamfnError, isErrorCode } from "../api/errors.js";
import type { ErrorCode } from "../api/errors.js";

export interface SendOptions {
  functionName: string;
  file?: string;
  url: string;
  stream?: string;
  token?: string;
  envelopes?: boolean;
}

/**
 * Streams lines to a function and prints every record the server sends back, one per line.
 * Reading pauses whenever the socket has a backlog, so a huge file streams in bounded memory.
 */
export async function sendStream(opts: SendOptions): Promise<string> {
  const base = opts.url.replace(/^http/, "ws").replace(/\/$/, "");
  const path = `/v1/functions/${encodeURIComponent(opts.functionName)}/streams${opts.stream ? `/${encodeURIComponent(opts.stream)}` : ""}`;
  const headers: Record<string, string> = opts.token ? { authorization: `Bearer ${opts.token}` } : {};
  const ws = new WebSocket(base + path, { headers });
  let status = "failed";
  const closed = new Promise<void>((resolve, reject) => {
    ws.on("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => {
        // Keep the server's own code, so the CLI's error line matches what the docs list.
        let code: ErrorCode = "INTERNAL";
        let message = `server refused the stream with HTTP ${res.statusCode}: ${body.slice(0, 200)}`;
        try {
          const e = (JSON.parse(body) as { error?: { code?: unknown; message?: unknown } }).error;
          if (e && isErrorCode(e.code)) {
            code = e.code;
            message = String(e.message);
          }
        } catch {
          // not JSON: keep the raw body in the message
        }
        reject(new StreamfnError(code, message));
      });
    });
    ws.on("error", (err) => reject(err));
    ws.on("close", () => resolve());
  });
  ws.on("message", (data: Buffer, isBinary: boolean) => {
    if (isBinary) {
      process.stdout.write(`${JSON.stringify({ type: "binary", base64: data.toString("base64") })}\n`);
      return;
    }
    const text = data.toString();
    process.stdout.write(`${text}\n`);
    try {
      const rec = JSON.parse(text) as { type?: string; status?: string };
      if (rec.type === "end" && rec.status) status = rec.status;
    } catch {}
  });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    closed.catch(reject);
  });
  const input = opts.file ? createReadStream(opts.file) : process.stdin;
  const lines = createInterface({ input, crlfDelay: Infinity });
  for await (const line of lines) {
    if (line.trim() === "") continue;
    if (ws.readyState !== WebSocket.OPEN) break;
    ws.send(opts.envelopes ? line : `{"data":${line}}`);
    while (ws.bufferedAmount > 1 << 20 && ws.readyState === WebSocket.OPEN) await new Promise((r) => setTimeout(r, 5));
  }
  if (ws.readyState === WebSocket.OPEN) ws.send('{"end":true}');
  await closed;
  return status;
}
