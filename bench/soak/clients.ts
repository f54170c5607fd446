// The soak's producers, one per protocol, behind one interface: send envelopes, collect every
// output and error, end the input or vanish. Each counts exactly what it got back.
import { request } from "node:http";
import type { ClientRequest, IncomingMessage } from "node:http";
import { WebSocket } from "ws";

export type Protocol = "ws" | "ndjson" | "http";
export const kProtocols: readonly Protocol[] = ["ws", "ndjson", "http"];

export interface EndRecord {
  type: "end";
  status: "completed" | "failed";
  reason: string;
  events: number;
  outputs: number;
  error?: { code: string; message: string };
}

/** One stream as its producer sees it. */
export interface StreamConn {
  /** The data of every output, in arrival order. */
  readonly outputs: unknown[];
  /** Codes of error records (WebSocket, NDJSON) or refused posts (HTTP), in order. */
  readonly errors: string[];
  /** Output records whose `n` was not the next number: a gap, a repeat or a reordering. */
  readonly misnumbered: number;
  /** Sends envelopes (JSON text each); resolves once the transport took them (HTTP: once answered). */
  send(lines: string[]): Promise<void>;
  /** Resolves once `n` outputs arrived. */
  waitOutputs(n: number, timeoutMs: number): Promise<void>;
  /** Stops reading outputs for `ms`: the server must hold the handler, not drop or buffer without bound. */
  pauseReading(ms: number): void;
  /** Ends the input normally. */
  finish(): Promise<void>;
  /** Goes away without ending: closes the connection (WebSocket, NDJSON) or stops posting and reading (HTTP). */
  abort(): void;
  /** The end record, or undefined when the connection went away without one. */
  readonly ended: Promise<EndRecord | undefined>;
}

/** Resolves waiters whenever something arrives. */
class Signal {
  #waiters: (() => void)[] = [];
  wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }
  async until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
}

/** What every protocol does with the records it reads. */
abstract class RecordReader {
  readonly outputs: unknown[] = [];
  readonly errors: string[] = [];
  misnumbered = 0;
  protected readonly signal = new Signal();
  protected endRecord: EndRecord | undefined;
  #resolveEnd!: (r: EndRecord | undefined) => void;
  readonly ended = new Promise<EndRecord | undefined>((resolve) => (this.#resolveEnd = resolve));

  protected onRecord(text: string): void {
    const r = JSON.parse(text) as { type: string; n?: number; data?: unknown; code?: string };
    if (r.type === "output") {
      if (r.n !== this.outputs.length + 1) this.misnumbered++;
      this.outputs.push(r.data);
    } else if (r.type === "error") {
      this.errors.push(r.code ?? "?");
    } else if (r.type === "end") {
      this.endRecord = r as unknown as EndRecord;
      this.settle();
    }
    this.signal.wake();
  }

  protected settle(): void {
    this.#resolveEnd(this.endRecord);
    this.signal.wake();
  }

  waitOutputs(n: number, timeoutMs: number): Promise<void> {
    return this.signal.until(() => this.outputs.length >= n, timeoutMs, `${n} outputs (have ${this.outputs.length})`);
  }
}

/** NDJSON lines of a response body, however the chunks split them. */
function readLines(res: IncomingMessage, onLine: (line: string) => void): void {
  let partial = "";
  res.setEncoding("utf8");
  res.on("data", (text: string) => {
    const lines = (partial + text).split("\n");
    partial = lines.pop()!;
    for (const line of lines) if (line) onLine(line);
  });
}

class WsConn extends RecordReader implements StreamConn {
  readonly #ws: WebSocket;

  private constructor(ws: WebSocket) {
    super();
    this.#ws = ws;
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (!isBinary) this.onRecord(data.toString("utf8"));
    });
    ws.on("close", () => this.settle());
    ws.on("error", () => this.settle());
  }

  static open(url: string): Promise<WsConn> {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const conn = new WsConn(ws);
    return new Promise((resolve, reject) => {
      ws.once("open", () => resolve(conn));
      ws.once("unexpected-response", (_req, res: IncomingMessage) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () => reject(new Error(`WebSocket refused: ${res.statusCode} ${body}`)));
      });
      ws.once("error", reject);
    });
  }

  send(lines: string[]): Promise<void> {
    if (this.#ws.readyState !== WebSocket.OPEN || lines.length === 0) return Promise.resolve();
    // Resolves once the last frame is written to the socket.
    return new Promise<void>((resolve) => {
      lines.forEach((line, i) => this.#ws.send(line, i === lines.length - 1 ? () => resolve() : undefined));
    });
  }

  pauseReading(ms: number): void {
    this.#ws.pause();
    setTimeout(() => this.#ws.resume(), ms).unref();
  }

  async finish(): Promise<void> {
    if (this.#ws.readyState === WebSocket.OPEN) this.#ws.send('{"end":true}');
  }

  abort(): void {
    // Before going, make sure the server read every frame sent (a pong follows them), so the
    // count of events it took is exact.
    if (this.#ws.readyState !== WebSocket.OPEN) return;
    this.#ws.once("pong", () => this.#ws.terminate());
    this.#ws.ping();
  }
}

class NdjsonConn extends RecordReader implements StreamConn {
  readonly #req: ClientRequest;
  #res: IncomingMessage | undefined;

  constructor(url: string) {
    super();
    this.#req = request(url, { method: "POST", headers: { "content-type": "application/x-ndjson" } });
    this.#req.on("response", (res) => {
      this.#res = res;
      readLines(res, (line) => this.onRecord(line));
      res.on("end", () => this.settle());
      res.on("error", () => this.settle());
      res.on("close", () => this.settle());
    });
    this.#req.on("error", () => this.settle());
    this.#req.flushHeaders();
  }

  send(lines: string[]): Promise<void> {
    const text = lines.map((l) => `${l}\n`).join("");
    return new Promise((resolve) => {
      if (this.#req.write(text)) resolve();
      else this.#req.once("drain", () => resolve());
    });
  }

  pauseReading(ms: number): void {
    const res = this.#res;
    if (!res) return;
    res.pause();
    setTimeout(() => res.resume(), ms).unref();
  }

  async finish(): Promise<void> {
    this.#req.end();
  }

  abort(): void {
    this.#req.destroy();
  }
}

/** One request per batch of events, outputs over a server-sent events subscription. */
class HttpConn extends RecordReader implements StreamConn {
  readonly #base: string;
  readonly #sub: ClientRequest;
  #subRes: IncomingMessage | undefined;
  #aborted = false;
  /** Resolves once the subscription is answered, so no output can come before it follows the stream. */
  readonly subscribed: Promise<void>;
  #onSubscribed!: () => void;

  constructor(base: string) {
    super();
    this.#base = base;
    this.subscribed = new Promise((resolve) => (this.#onSubscribed = resolve));
    // Subscribed before the first event: the subscription waits for the stream to open.
    this.#sub = request(`${base}/outputs`, { headers: { accept: "text/event-stream" } });
    this.#sub.on("response", (res) => {
      this.#subRes = res;
      this.#onSubscribed();
      let buf = "";
      res.setEncoding("utf8");
      res.on("data", (text: string) => {
        buf += text;
        let i: number;
        while ((i = buf.indexOf("\n\n")) !== -1) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let event = "message";
          let data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event: ")) event = line.slice(7);
            else if (line.startsWith("data: ")) data += line.slice(6);
          }
          if (data && (event === "output" || event === "end" || event === "error")) this.onRecord(data);
        }
      });
      res.on("end", () => this.settle());
      res.on("error", () => this.settle());
    });
    this.#sub.on("error", () => {
      this.#onSubscribed();
      this.settle();
    });
    this.#sub.end();
  }

  async send(lines: string[]): Promise<void> {
    if (this.#aborted) return;
    const single = lines.length === 1;
    const body = single ? lines[0]! : lines.join("\n") + "\n";
    for (let attempt = 0; ; attempt++) {
      const res = await fetch(`${this.#base}/events`, {
        method: "POST",
        headers: { "content-type": single ? "application/json" : "application/x-ndjson" },
        body,
      });
      const answer = (await res.json()) as { error?: { code: string } };
      if (res.status === 202) return;
      // The inbox is full: nothing was taken; the same request again is safe (events carry seqs).
      if (res.status === 429 && attempt < 200) {
        const wait = Math.min(1000, Number(res.headers.get("retry-after") ?? "1") * 1000);
        await new Promise((r) => setTimeout(r, wait / 10));
        continue;
      }
      this.errors.push(answer.error?.code ?? String(res.status));
      this.signal.wake();
      return;
    }
  }

  pauseReading(ms: number): void {
    const res = this.#subRes;
    if (!res) return;
    res.pause();
    setTimeout(() => res.resume(), ms).unref();
  }

  async finish(): Promise<void> {
    if (this.#aborted) return;
    const res = await fetch(`${this.#base}/end`, { method: "POST" });
    await res.arrayBuffer();
  }

  abort(): void {
    this.#aborted = true;
    this.#sub.destroy();
  }
}

/** Opens a stream of `fn` named `id` over `protocol`. */
export async function openStream(base: string, protocol: Protocol, fn: string, id: string): Promise<StreamConn> {
  const url = `${base}/v1/functions/${fn}/streams/${id}`;
  if (protocol === "ws") return WsConn.open(url.replace(/^http/, "ws"));
  if (protocol === "ndjson") return new NdjsonConn(url);
  const conn = new HttpConn(url);
  await conn.subscribed;
  return conn;
}
