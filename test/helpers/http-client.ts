import { request } from "node:http";
import type { ClientRequest, IncomingMessage } from "node:http";
import type { Rec } from "./ws-client.js";

/** Resolves once `check` holds, re-checking whenever `onChange` subscribers are woken. */
class Waiters {
  #waiters: (() => void)[] = [];
  wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }
  async until<T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = check();
      if (v !== undefined) return v;
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

/**
 * A whole stream over one HTTP request over a real socket: write NDJSON lines into the
 * request body while reading the NDJSON records of the response as they arrive.
 */
export class NdjsonStream {
  readonly req: ClientRequest;
  readonly records: Rec[] = [];
  res: IncomingMessage | undefined;
  status: number | undefined;
  body = "";
  ended = false;
  error: Error | undefined;
  readonly #w = new Waiters();
  #partial = "";

  constructor(url: string, options: { method?: string; headers?: Record<string, string> } = {}) {
    this.req = request(url, {
      method: options.method ?? "POST",
      headers: { "content-type": "application/x-ndjson", ...options.headers },
    });
    this.req.on("response", (res) => {
      this.res = res;
      this.status = res.statusCode;
      res.setEncoding("utf8");
      res.on("data", (text: string) => {
        this.body += text;
        const lines = (this.#partial + text).split("\n");
        this.#partial = lines.pop()!;
        for (const line of lines) if (line) this.records.push(JSON.parse(line) as Rec);
        this.#w.wake();
      });
      res.on("end", () => {
        this.ended = true;
        this.#w.wake();
      });
      res.on("error", () => {});
    });
    this.req.on("error", (err) => {
      this.error = err;
      this.#w.wake();
    });
    this.req.flushHeaders();
  }

  /** Writes lines (values are JSON-encoded; strings go as they are). Resolves when the body took them. */
  write(...lines: unknown[]): Promise<void> {
    const text = lines.map((l) => (typeof l === "string" ? l : JSON.stringify(l)) + "\n").join("");
    return new Promise((resolve) => {
      if (this.req.write(text)) resolve();
      else this.req.once("drain", () => resolve());
    });
  }

  end(): void {
    this.req.end();
  }

  destroy(): void {
    this.req.destroy();
  }

  outputs(): unknown[] {
    return this.records.filter((r) => r.type === "output").map((r) => r.data);
  }

  waitFor(pred: (r: Rec) => boolean, timeoutMs = 10_000, what = "a record"): Promise<Rec> {
    return this.#w.until(() => this.records.find(pred), timeoutMs, what);
  }

  waitResponse(timeoutMs = 10_000): Promise<IncomingMessage> {
    return this.#w.until(() => this.res, timeoutMs, "the response");
  }

  async waitEnd(timeoutMs = 10_000): Promise<Rec> {
    const end = await this.waitFor((r) => r.type === "end", timeoutMs, "the end record");
    await this.#w.until(() => (this.ended ? true : undefined), timeoutMs, "the response's end");
    return end;
  }
}

export interface SseEvent {
  id?: string;
  event: string;
  data: string;
}

/** An output subscription (server-sent events) over a real socket. */
export class SseClient {
  readonly events: SseEvent[] = [];
  res: IncomingMessage | undefined;
  status: number | undefined;
  body = "";
  closed = false;
  readonly req: ClientRequest;
  readonly #w = new Waiters();
  #buf = "";

  constructor(url: string, headers: Record<string, string> = {}) {
    this.req = request(url, { headers: { accept: "text/event-stream", ...headers } });
    this.req.on("response", (res) => {
      this.res = res;
      this.status = res.statusCode;
      res.setEncoding("utf8");
      res.on("data", (text: string) => this.#onText(text));
      res.on("end", () => {
        this.closed = true;
        this.#w.wake();
      });
      res.on("error", () => {});
      this.#w.wake();
    });
    this.req.on("error", () => {
      this.closed = true;
      this.#w.wake();
    });
    this.req.end();
  }

  #onText(text: string): void {
    this.body += text;
    this.#buf += text;
    let i: number;
    while ((i = this.#buf.indexOf("\n\n")) !== -1) {
      const block = this.#buf.slice(0, i);
      this.#buf = this.#buf.slice(i + 2);
      const ev: SseEvent = { event: "message", data: "" };
      let hasData = false;
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "id") ev.id = value;
        else if (field === "event") ev.event = value;
        else if (field === "data") {
          ev.data = hasData ? `${ev.data}\n${value}` : value;
          hasData = true;
        }
      }
      if (hasData) this.events.push(ev);
    }
    this.#w.wake();
  }

  /** The output records received, parsed. */
  outputs(): Rec[] {
    return this.events.filter((e) => e.event === "output").map((e) => JSON.parse(e.data) as Rec);
  }

  waitResponse(timeoutMs = 10_000): Promise<IncomingMessage> {
    return this.#w.until(() => this.res, timeoutMs, "the response");
  }

  waitFor(pred: (e: SseEvent) => boolean, timeoutMs = 10_000, what = "an event"): Promise<SseEvent> {
    return this.#w.until(() => this.events.find(pred), timeoutMs, what);
  }

  waitOutputs(count: number, timeoutMs = 10_000): Promise<Rec[]> {
    return this.#w.until(() => {
      const outs = this.outputs();
      return outs.length >= count ? outs : undefined;
    }, timeoutMs, `${count} outputs`);
  }

  async waitEnd(timeoutMs = 10_000): Promise<Rec> {
    const e = await this.waitFor((ev) => ev.event === "end", timeoutMs, "the end event");
    await this.#w.until(() => (this.closed ? true : undefined), timeoutMs, "the subscription's end");
    return JSON.parse(e.data) as Rec;
  }

  close(): void {
    this.req.destroy();
  }
}

export interface JsonResponse {
  status: number;
  headers: Headers;
  body: Record<string, unknown> & { error?: { code: string; message: string } };
}

/** One request, its JSON answer. */
const kCallTimeoutMs = 30_000;

export async function call(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string | Uint8Array } = {},
): Promise<JsonResponse> {
  // A server that never answers fails the test here, naming the URL, instead of holding it
  // until the runner's own timeout says nothing about where.
  const res = await fetch(url, { method: init.method ?? "GET", headers: init.headers, body: init.body, signal: AbortSignal.timeout(kCallTimeoutMs) }).catch((err: unknown) => {
    throw new Error(`${init.method ?? "GET"} ${url}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as JsonResponse["body"]) : {} };
}

/** POSTs events: values as one JSON envelope each; several make an NDJSON batch. */
export function postEvents(base: string, fn: string, streamId: string, envelopes: unknown[]): Promise<JsonResponse> {
  const url = `${base}/v1/functions/${fn}/streams/${streamId}/events`;
  if (envelopes.length === 1) {
    return call(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(envelopes[0]) });
  }
  return call(url, {
    method: "POST",
    headers: { "content-type": "application/x-ndjson" },
    body: envelopes.map((e) => JSON.stringify(e)).join("\n") + "\n",
  });
}
