import { WebSocket } from "ws";
import { authHeaders, errorFromBody } from "../client.js";
import type { ServerTarget } from "../client.js";
import type { Item } from "./sources.js";
import { streamPath, unreachable } from "./transport.js";
import type { RecordHandler, Transport } from "./transport.js";

/** Unsent bytes above which sending waits for the socket to take them. */
const kHighWater = 1024 * 1024;

/**
 * A stream over one WebSocket: events as text or binary frames, records back as text frames.
 * A binary output arrives as its record followed by a binary frame; the two are printed as
 * one record with the bytes in base64, as the HTTP route sends it.
 */
export class WsTransport implements Transport {
  readonly closed: Promise<void>;
  readonly #ws: WebSocket;
  readonly #opened: Promise<void>;
  #binaryRecord: string | undefined;

  constructor(target: ServerTarget, functionName: string, streamId: string | undefined, onRecord: RecordHandler) {
    const url = target.url.replace(/^http/, "ws") + streamPath(functionName, streamId);
    this.#ws = new WebSocket(url, { headers: authHeaders(target), perMessageDeflate: false });
    const ws = this.#ws;
    let opened = false;
    this.#opened = new Promise<void>((resolve, reject) => {
      ws.once("open", () => {
        opened = true;
        resolve();
      });
      ws.once("unexpected-response", (_req, res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body = (body + c).slice(0, 64 * 1024)));
        res.on("end", () => reject(errorFromBody(res.statusCode ?? 0, body)));
        res.on("error", (err) => reject(unreachable(target, err)));
      });
      ws.once("error", (err) => {
        if (!opened) reject(unreachable(target, err));
      });
    });
    this.#opened.catch(() => {});
    this.closed = new Promise<void>((resolve) => ws.once("close", () => resolve()));
    ws.on("error", () => {
      // After the handshake a failing socket also closes; 'close' tells the rest.
    });
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (isBinary) {
        const rec = this.#binaryRecord;
        this.#binaryRecord = undefined;
        const b64 = data.toString("base64");
        onRecord(rec ? `${rec.slice(0, -1)},"base64":"${b64}"}` : `{"type":"binary","base64":"${b64}"}`);
        return;
      }
      const text = data.toString();
      if (text.startsWith('{"type":"output"') && text.endsWith('"binary":true}')) {
        this.#binaryRecord = text;
        return;
      }
      onRecord(text);
    });
  }

  open(): Promise<void> {
    return this.#opened;
  }

  get live(): boolean {
    return this.#ws.readyState === WebSocket.OPEN;
  }

  async send(item: Item): Promise<void> {
    const ws = this.#ws;
    if (ws.readyState !== WebSocket.OPEN) return;
    const payload = item.kind === "text" ? item.text : item.bytes;
    const binary = item.kind === "binary";
    if (ws.bufferedAmount < kHighWater) {
      ws.send(payload, { binary });
      return;
    }
    // The callback runs once this frame, and so everything before it, is on the socket.
    await new Promise<void>((resolve) => ws.send(payload, { binary }, () => resolve()));
  }

  end(): void {
    if (this.#ws.readyState === WebSocket.OPEN) this.#ws.send('{"end":true}');
    else if (this.#ws.readyState === WebSocket.CONNECTING) this.#ws.terminate();
  }
}
