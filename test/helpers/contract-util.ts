import { createServer } from "node:net";
import { StreamClient } from "./ws-client.js";

export interface Refusal {
  status: number;
  body: { error: { code: string; message: string } };
  headers: Record<string, string | string[] | undefined>;
}

/** Connects expecting the handshake to be refused; returns the HTTP status, body and headers. */
export async function refused(url: string): Promise<Refusal> {
  try {
    const c = await StreamClient.connect(url);
    c.close();
  } catch (err) {
    const e = err as Partial<Refusal>;
    if (typeof e.status !== "number") throw err;
    return e as Refusal;
  }
  throw new Error(`expected ${url} to be refused, but the handshake succeeded`);
}

/** A loopback port that was free a moment ago (for processes that cannot report their port). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** A function source: `defineStreamFunction({ <options>, <handler> })` with the usual import. */
export function fnSource(body: string, prelude = ""): string {
  return `import { defineStreamFunction } from "streamfn";\n${prelude}\nexport default defineStreamFunction(${body});\n`;
}
