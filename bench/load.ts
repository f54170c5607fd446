// The load generator: real WebSocket producers on loopback, kept as cheap as possible so the
// machine's two cores go to the server. Records are recognised by their first bytes instead
// of being parsed: `{"type":"output"` and so on.
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import { WebSocket } from "ws";

export type Payload = { kind: "json"; frame: Buffer } | { kind: "binary"; frame: Buffer };

/** A ~1 KB JSON event envelope, as UTF-8 bytes (sent as a text frame). */
export function jsonPayload(): Payload {
  const readings = Array.from({ length: 48 }, (_, i) => Math.round(Math.sin(i) * 1e4) / 100);
  const data = {
    v: 1,
    device: "sensor-0042",
    site: "plant-7/line-3",
    kind: "vibration",
    unit: "mm/s",
    readings,
    tags: ["bench", "json", "steady"],
    note: "x".repeat(420),
  };
  return { kind: "json", frame: Buffer.from(JSON.stringify({ data })) };
}

/** A 1 KiB binary event (one binary frame). */
export function binaryPayload(): Payload {
  const frame = Buffer.alloc(1024);
  for (let i = 0; i < frame.length; i++) frame[i] = (i * 31) & 0xff;
  return { kind: "binary", frame };
}

const kEndFrame = Buffer.from('{"end":true}');
const O = 0x6f; // o
const U = 0x75; // u
const E = 0x65; // e
const N = 0x6e; // n

/** One producer connection (one stream). */
export class Producer {
  readonly ws: WebSocket;
  socket: Socket | undefined;
  /** Called for each output record. */
  onOutput: () => void = () => {};
  endRecord: Record<string, unknown> | undefined;
  failure: Error | undefined;
  readonly closed: Promise<void>;
  #endWaiters: (() => void)[] = [];
  #corked = false;

  private constructor(url: string) {
    this.ws = new WebSocket(url, { perMessageDeflate: false, skipUTF8Validation: true });
    this.ws.on("upgrade", (res: IncomingMessage) => {
      this.socket = res.socket as Socket;
    });
    this.ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (isBinary) return;
      const c9 = data[9];
      const c10 = data[10];
      if (c9 === O && c10 === U) this.onOutput();
      else if (c9 === O) return; // the open record
      else if (c9 === E && c10 === N) {
        this.endRecord = JSON.parse(data.toString("utf8")) as Record<string, unknown>;
        if (this.endRecord.status !== "completed") this.#fail(new Error(`stream failed: ${data.toString("utf8")}`));
        this.#wakeEnd();
      } else {
        this.#fail(new Error(`server reported: ${data.toString("utf8")}`));
      }
    });
    this.closed = new Promise((resolve) => {
      this.ws.on("close", () => {
        this.#wakeEnd();
        resolve();
      });
    });
    this.ws.on("error", (err) => this.#fail(err));
  }

  /** Opens a stream; resolves once the WebSocket handshake is done. */
  static connect(url: string): Promise<Producer> {
    const p = new Producer(url);
    return new Promise((resolve, reject) => {
      p.ws.once("open", () => resolve(p));
      p.ws.once("unexpected-response", (_req, res: IncomingMessage) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () => reject(new Error(`handshake refused: ${res.statusCode} ${body}`)));
      });
      p.ws.once("error", reject);
    });
  }

  send(payload: Payload): void {
    this.ws.send(payload.frame, { binary: payload.kind === "binary" });
  }

  /** Sends now, but lets every send of this turn leave in one write. */
  sendCorked(payload: Payload): void {
    if (!this.#corked && this.socket) {
      this.#corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.#corked = false;
        this.socket!.uncork();
      });
    }
    this.send(payload);
  }

  /** Ends the stream and waits for its end record (or the connection's close). */
  async end(): Promise<void> {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(kEndFrame, { binary: false });
    if (this.endRecord === undefined && this.ws.readyState !== WebSocket.CLOSED) {
      await new Promise<void>((resolve) => this.#endWaiters.push(resolve));
    }
    await this.closed;
  }

  #fail(err: Error): void {
    this.failure ??= err;
  }

  #wakeEnd(): void {
    const w = this.#endWaiters;
    this.#endWaiters = [];
    for (const f of w) f();
  }
}

/** Connects `n` producers, at most `parallel` handshakes at a time. */
export async function connectMany(
  url: (i: number) => string,
  n: number,
  parallel: number,
  progress?: (done: number) => void,
): Promise<Producer[]> {
  const out: Producer[] = new Array(n);
  let next = 0;
  let done = 0;
  const lane = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      out[i] = await Producer.connect(url(i));
      if (++done % 1000 === 0) progress?.(done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, n) }, lane));
  return out;
}

export interface FlowResult {
  events: number;
  wallMs: number;
  /** Per event: from its send to its output's arrival, µs. */
  latencyUs: Float64Array;
}

/**
 * Drives already-connected producers: each keeps `window` events in flight (1: send the next
 * only after the previous one's output came back) until `eventsPerStream` outputs arrived.
 * `around` is called right before the first send and right after the last output, so the
 * caller can snapshot the server's counters for exactly the measured span.
 */
export async function runFlow(
  producers: Producer[],
  eventsPerStream: number,
  window: number,
  payload: Payload,
  around: { start(): Promise<void>; stop(): Promise<void> },
): Promise<FlowResult> {
  const total = producers.length * eventsPerStream;
  const latencyUs = new Float64Array(total);
  await around.start();
  const t0 = performance.now();
  await Promise.all(
    producers.map(
      (p, index) =>
        new Promise<void>((resolve, reject) => {
          const sentAt = new Float64Array(eventsPerStream);
          const base = index * eventsPerStream;
          let sent = 0;
          let received = 0;
          const pipelined = window > 1;
          p.onOutput = () => {
            const now = performance.now();
            if (received >= eventsPerStream) return;
            latencyUs[base + received] = (now - sentAt[received]!) * 1000;
            received++;
            if (received === eventsPerStream) {
              resolve();
              return;
            }
            if (sent < eventsPerStream) {
              sentAt[sent++] = performance.now();
              if (pipelined) p.sendCorked(payload);
              else p.send(payload);
            }
          };
          p.closed.then(() => {
            if (received < eventsPerStream) reject(p.failure ?? new Error(`stream closed after ${received} of ${eventsPerStream} outputs`));
          }, reject);
          const first = Math.min(window, eventsPerStream);
          for (let i = 0; i < first; i++) {
            sentAt[sent++] = performance.now();
            p.sendCorked(payload);
          }
        }),
    ),
  );
  const wallMs = performance.now() - t0;
  await around.stop();
  for (const p of producers) p.onOutput = () => {};
  return { events: total, wallMs, latencyUs };
}

export interface StartSample {
  /** First event sent (right at the handshake's completion) → its output received, µs. */
  firstEventUs: number;
  /** Connection attempt → first output received, µs: what a client sees end to end. */
  connectUs: number;
}

/** Opens one stream, sends one event, waits for its output, ends the stream. */
export async function oneShot(url: string, payload: Payload): Promise<StartSample> {
  const t0 = performance.now();
  const p = await Producer.connect(url);
  const got = new Promise<number>((resolve, reject) => {
    p.onOutput = () => resolve(performance.now());
    p.closed.then(() => reject(p.failure ?? new Error("stream closed before its first output")), reject);
  });
  const t1 = performance.now();
  p.send(payload);
  const t2 = await got;
  await p.end();
  if (p.failure) throw p.failure;
  return { firstEventUs: (t2 - t1) * 1000, connectUs: (t2 - t0) * 1000 };
}

/** Sends one event on each producer and waits until each has its output back. */
export async function pingAll(producers: Producer[], payload: Payload, parallel: number): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < producers.length) {
      const p = producers[next++]!;
      await new Promise<void>((resolve, reject) => {
        p.onOutput = () => {
          p.onOutput = () => {};
          resolve();
        };
        p.closed.then(() => reject(p.failure ?? new Error("stream closed before its output")), reject);
        p.send(payload);
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, producers.length) }, lane));
}
