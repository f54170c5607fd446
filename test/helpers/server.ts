import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { StreamfnServer } from "../../src/server/server.js";
import type { ServerOptions } from "../../src/server/server.js";
import { createServerLogger } from "../../src/server/logger.js";

/** One record of the server's log, as parsed from its JSON line. */
export type LogRecordJson = Record<string, unknown> & { level: string; time: string; msg: string };

export interface TestServer {
  server: StreamfnServer;
  /** http://127.0.0.1:port */
  url: string;
  /** ws://127.0.0.1:port */
  wsUrl: string;
  dir: string;
  /** The server's log records so far, parsed. */
  logs: LogRecordJson[];
  /** The server's log as written: JSON lines. */
  logText(): string;
  close(): Promise<void>;
}

/**
 * Starts a real server on a free loopback port, serving the given function sources
 * (file name → TypeScript source; `lib/x.ts` makes the folder) from a fresh temporary directory.
 */
export async function startTestServer(
  functions: Record<string, string>,
  options: Partial<ServerOptions> = {},
): Promise<TestServer> {
  const dir = await mkdtemp(join(tmpdir(), "streamfn-test-"));
  for (const [file, source] of Object.entries(functions)) {
    await mkdir(dirname(join(dir, file)), { recursive: true });
    await writeFile(join(dir, file), source);
  }
  const logs: LogRecordJson[] = [];
  const lines: string[] = [];
  const logger = createServerLogger({
    destination: {
      write(line: string) {
        lines.push(line);
        logs.push(JSON.parse(line) as LogRecordJson);
      },
    },
  });
  const server = await StreamfnServer.start({
    functionsDir: dir,
    port: 0,
    host: "127.0.0.1",
    graceMs: 0,
    logger,
    ...options,
  });
  const url = server.url;
  return {
    server,
    url,
    wsUrl: url.replace(/^http/, "ws"),
    dir,
    logs,
    logText: () => lines.join(""),
    async close() {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns a truthy value or `timeoutMs` passes. */
export async function eventually<T>(
  check: () => T | Promise<T>,
  timeoutMs = 5_000,
  what = "condition",
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}
