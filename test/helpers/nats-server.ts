import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The nats-server binary, or undefined when it is not installed (cluster tests then skip). */
export function natsServerBinary(): string | undefined {
  const r = spawnSync("sh", ["-c", "command -v nats-server"], { encoding: "utf8" });
  const path = r.stdout.trim();
  return r.status === 0 && path ? path : undefined;
}

/** The reason to skip a cluster test, or false when it can run. */
export const kSkipWithoutNats: string | false = natsServerBinary() ? false : "nats-server is not installed (apt-get install nats-server): cluster tests skipped";

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = netConnect({ host: "127.0.0.1", port });
    sock.once("connect", () => {
      sock.destroy();
      resolve(true);
    });
    sock.once("error", () => resolve(false));
  });
}

/**
 * A nats-server of the test's own with JetStream on a free loopback port and a temp store
 * directory. `restart()` stops it and starts it again on the same port and store (file
 * storage survives); `stop()` stops it by PID and removes the store.
 */
export class TestNatsServer {
  readonly port: number;
  readonly storeDir: string;
  readonly extraArgs: string[];
  #child: ChildProcess | undefined;
  output = "";

  private constructor(port: number, storeDir: string, extraArgs: string[]) {
    this.port = port;
    this.storeDir = storeDir;
    this.extraArgs = extraArgs;
  }

  static async start(extraArgs: string[] = []): Promise<TestNatsServer> {
    const s = new TestNatsServer(await freePort(), mkdtempSync(join(tmpdir(), "sfn-nats-")), extraArgs);
    await s.#spawn();
    return s;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  async #spawn(): Promise<void> {
    const bin = natsServerBinary();
    if (!bin) throw new Error("nats-server is not installed");
    const child = spawn(bin, ["-js", "-a", "127.0.0.1", "-p", String(this.port), "-sd", this.storeDir, ...this.extraArgs], { stdio: ["ignore", "pipe", "pipe"] });
    this.#child = child;
    const take = (c: Buffer): void => {
      this.output = (this.output + c.toString()).slice(-20_000);
    };
    child.stdout!.on("data", take);
    child.stderr!.on("data", take);
    const deadline = Date.now() + 15_000;
    while (!/Server is ready/.test(this.output) || !(await canConnect(this.port))) {
      if (child.exitCode !== null) throw new Error(`nats-server exited (${child.exitCode}):\n${this.output}`);
      if (Date.now() > deadline) throw new Error(`nats-server did not get ready:\n${this.output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async #kill(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGTERM");
    const t = setTimeout(() => child.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(t);
  }

  async restart(): Promise<void> {
    await this.#kill();
    this.output = "";
    await this.#spawn();
  }

  async stop(): Promise<void> {
    await this.#kill();
    rmSync(this.storeDir, { recursive: true, force: true });
  }
}
