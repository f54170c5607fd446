import { get } from "node:http";
import type { ClientRequest, IncomingMessage } from "node:http";
import { eventually } from "./server.js";

export type LogRec = { type: string; [key: string]: unknown };

/** A reader of a logs route with ?follow=1 over a real socket: collects its NDJSON records. */
export class LogFollow {
  readonly records: LogRec[] = [];
  readonly req: ClientRequest;
  res: IncomingMessage | undefined;
  ended = false;
  #buf = "";

  constructor(url: string, headers: Record<string, string> = {}) {
    this.req = get(url, { headers }, (res) => {
      this.res = res;
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        this.#buf += chunk;
        let nl: number;
        while ((nl = this.#buf.indexOf("\n")) >= 0) {
          const line = this.#buf.slice(0, nl);
          this.#buf = this.#buf.slice(nl + 1);
          if (line) this.records.push(JSON.parse(line) as LogRec);
        }
      });
      res.on("end", () => (this.ended = true));
    });
    this.req.on("error", () => (this.ended = true));
  }

  /** Resolves once the response's headers are in: the server has taken the follower on. */
  async connected(): Promise<IncomingMessage> {
    return eventually(() => this.res, 10_000, "the follow response");
  }

  waitFor(pred: (r: LogRec) => boolean, what: string): Promise<LogRec> {
    return eventually(() => this.records.find(pred), 10_000, what);
  }

  close(): void {
    this.req.destroy();
  }
}
