import { WebSocket } from "ws";

export interface Rec {
  type: string;
  [key: string]: unknown;
}

/**
 * A test producer over a real WebSocket: collects every record the server sends, in order.
 * Binary frames are kept as `{ type: "binary-frame", bytes }`.
 */
export class StreamClient {
  readonly records: Rec[] = [];
  readonly ws: WebSocket;
  closeCode: number | undefined;
  readonly #closed: Promise<number>;
  #waiters: (() => void)[] = [];

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      this.records.push(isBinary ? { type: "binary-frame", bytes: new Uint8Array(data) } : (JSON.parse(data.toString()) as Rec));
      this.#wake();
    });
    this.#closed = new Promise((resolve) => {
      ws.on("close", (code) => {
        this.closeCode = code;
        this.#wake();
        resolve(code);
      });
    });
  }

  /** Connects; rejects with `{status, body}` if the server refuses the handshake. */
  static connect(url: string, headers: Record<string, string> = {}): Promise<StreamClient> {
    return new Promise((resolve, reject) => {
      // A handshake that never completes fails here, naming the URL (ws's own timeout is off by default).
      const ws = new WebSocket(url, { headers, handshakeTimeout: 30_000 });
      const client = new StreamClient(ws);
      ws.once("open", () => resolve(client));
      ws.once("unexpected-response", (_req, res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () => reject(Object.assign(new Error(`refused: ${res.statusCode} ${body}`), { status: res.statusCode, body: JSON.parse(body || "{}"), headers: res.headers })));
      });
      ws.once("error", reject);
    });
  }

  send(value: unknown): void {
    this.ws.send(typeof value === "string" ? value : JSON.stringify(value));
  }

  event(data: unknown, seq?: number): void {
    this.send(seq === undefined ? { data } : { data, seq });
  }

  binary(bytes: Uint8Array): void {
    this.ws.send(bytes, { binary: true });
  }

  end(): void {
    this.send({ end: true });
  }

  outputs(): unknown[] {
    return this.records.filter((r) => r.type === "output" && !r.binary).map((r) => r.data);
  }

  errors(): Rec[] {
    return this.records.filter((r) => r.type === "error");
  }

  /** Waits for a record matching `pred`; returns it. */
  async waitFor(pred: (r: Rec) => boolean, timeoutMs = 5_000): Promise<Rec> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.records.find(pred);
      if (found) return found;
      if (this.closeCode !== undefined) throw new Error(`connection closed (${this.closeCode}) before the record came; got ${JSON.stringify(this.records)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out; records so far: ${JSON.stringify(this.records).slice(0, 2000)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  waitEnd(timeoutMs = 5_000): Promise<Rec> {
    return this.waitFor((r) => r.type === "end", timeoutMs);
  }

  waitClose(): Promise<number> {
    return this.#closed;
  }

  close(code = 1000): void {
    this.ws.close(code);
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }
}
