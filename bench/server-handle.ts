import { fork } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { StreamFunctionOptions } from "../src/api/types.js";
import type { FromServer, ServerStats, ToServer } from "./server-process.js";

const kEntry = fileURLToPath(new URL("./server-process.js", import.meta.url));

/** The load generator's handle on the server child process. */
export class ServerHandle {
  readonly #child: ChildProcess;
  readonly port: number;
  readonly inlinePort: number;
  readonly #waiting = new Map<number, (s: ServerStats) => void>();
  #nextId = 1;
  #exited: Promise<number | null>;

  private constructor(child: ChildProcess, port: number, inlinePort: number, exited: Promise<number | null>) {
    this.#child = child;
    this.port = port;
    this.inlinePort = inlinePort;
    this.#exited = exited;
    child.on("message", (msg: FromServer) => {
      if (msg.type !== "stats") return;
      const resolve = this.#waiting.get(msg.id);
      this.#waiting.delete(msg.id);
      resolve?.(msg.stats);
    });
  }

  /**
   * Forks the server on a free loopback port; `nodeFlags` such as `--cpu-prof` go to its node.
   * The server logs to this process's stderr, or to the file descriptor `logFd`.
   */
  static start(
    functionsDir: string,
    cacheDir: string,
    options: { nodeFlags?: string[]; overrides?: Record<string, StreamFunctionOptions>; logFd?: number } = {},
  ): Promise<ServerHandle> {
    const child = fork(kEntry, [functionsDir, cacheDir, JSON.stringify(options.overrides ?? {})], {
      execArgv: options.nodeFlags ?? [],
      stdio: ["ignore", "inherit", options.logFd ?? "inherit", "ipc"],
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null): void => reject(new Error(`the server process exited (${code}) before it was ready`));
      child.once("exit", onExit);
      child.once("error", reject);
      child.once("message", (msg: FromServer) => {
        child.off("exit", onExit);
        if (msg.type === "ready") resolve(new ServerHandle(child, msg.port, msg.inlinePort, exited));
        else reject(new Error(`unexpected first message from the server: ${JSON.stringify(msg)}`));
      });
    });
  }

  get pid(): number {
    return this.#child.pid!;
  }

  get wsBase(): string {
    return `ws://127.0.0.1:${this.port}/v1/functions`;
  }

  /** The inline reference server: any path opens a stream of the same function. */
  get inlineUrl(): string {
    return `ws://127.0.0.1:${this.inlinePort}/`;
  }

  stats(): Promise<ServerStats> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, resolve);
      const msg: ToServer = { type: "stats", id };
      if (!this.#child.send(msg)) reject(new Error("the server process is gone"));
    });
  }

  /** Asks the server to close and waits for its process to exit (SIGKILL after `timeoutMs`). */
  async stop(timeoutMs = 15_000): Promise<void> {
    if (this.#child.exitCode !== null) return;
    const msg: ToServer = { type: "stop" };
    this.#child.send(msg);
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), timeoutMs);
    await this.#exited;
    clearTimeout(timer);
  }
}

/** CPU µs the server used between two snapshots: all threads, and the main thread alone. */
export function cpuBetween(a: ServerStats, b: ServerStats): { totalUs: number; mainUs: number; wakeups: number } {
  return {
    totalUs: b.userUs + b.systemUs - (a.userUs + a.systemUs),
    mainUs: b.mainThreadUs - a.mainThreadUs,
    wakeups: b.wakeups - a.wakeups,
  };
}
