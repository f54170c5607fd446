import { request as httpRequest } from "node:http";
import type { ClientRequest, IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { createInterface } from "node:readline";
import { StreamfnError } from "../../api/errors.js";
import { authHeaders, errorFromBody } from "../client.js";
import type { ServerTarget } from "../client.js";
import type { Item } from "./sources.js";
import { streamPath, unreachable } from "./transport.js";
import type { RecordHandler, Transport } from "./transport.js";

/**
 * A stream over one HTTP request (the NDJSON duplex route): envelopes go up as the request
 * body while records come down on the response. The server answers before reading the body,
 * so a refusal is known before any event is sent.
 */
export class HttpTransport implements Transport {
  readonly closed: Promise<void>;
  readonly #req: ClientRequest;
  readonly #opened: Promise<void>;
  #responseEnded = false;

  constructor(target: ServerTarget, functionName: string, streamId: string | undefined, onRecord: RecordHandler) {
    const url = new URL(target.url + streamPath(functionName, streamId));
    const request = url.protocol === "https:" ? httpsRequest : httpRequest;
    // A kept-alive connection, not `Connection: close`: a server that closes the socket after
    // its response while body bytes are still arriving resets the connection, and the reset
    // can take the response's last records (the end record) with it.
    this.#req = request(url, {
      method: "POST",
      headers: { ...authHeaders(target), "content-type": "application/x-ndjson" },
    });
    const req = this.#req;
    let closeResolve!: () => void;
    this.closed = new Promise<void>((resolve) => (closeResolve = resolve));
    this.#opened = new Promise<void>((resolve, reject) => {
      req.once("error", (err) => {
        reject(unreachable(target, err));
        closeResolve();
      });
      req.once("response", (res: IncomingMessage) => {
        if (res.statusCode !== 200) {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => (body = (body + c).slice(0, 64 * 1024)));
          res.on("end", () => {
            reject(errorFromBody(res.statusCode ?? 0, body));
            req.destroy();
            closeResolve();
          });
          return;
        }
        resolve();
        const lines = createInterface({ input: res, crlfDelay: Infinity });
        lines.on("line", (line) => {
          if (line !== "") onRecord(line);
        });
        // A connection lost midway: 'close' follows, and the missing end record says the rest.
        lines.on("error", () => {});
        res.on("error", () => {});
        res.once("close", () => {
          this.#responseEnded = true;
          // The stream is over; whatever of the body is still unsent is not wanted.
          if (!req.writableEnded) req.destroy();
          closeResolve();
        });
      });
    });
    this.#opened.catch(() => {});
    req.flushHeaders();
  }

  open(): Promise<void> {
    return this.#opened;
  }

  get live(): boolean {
    return !this.#responseEnded && !this.#req.destroyed && !this.#req.writableEnded;
  }

  async send(item: Item): Promise<void> {
    if (item.kind === "binary") throw new StreamfnError("INVALID_REQUEST", "binary events cannot be sent over --http");
    if (!this.live) return;
    if (this.#req.write(`${item.text}\n`)) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        this.#req.off("drain", done);
        this.#req.off("close", done);
        resolve();
      };
      this.#req.on("drain", done);
      this.#req.on("close", done);
    });
  }

  end(): void {
    if (!this.#req.destroyed && !this.#req.writableEnded) this.#req.end();
  }
}
