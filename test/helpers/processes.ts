import { spawn } from "node:child_process";
import type { ChildProcess, SpawnOptions } from "node:child_process";
import { fileURLToPath } from "node:url";

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion and collects its output; never rejects on a non-zero exit. */
export function run(command: string, args: string[], options: SpawnOptions & { input?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
    child.once("error", reject);
    child.once("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
    child.stdin!.on("error", () => {}); // a command that exits without reading its input
    child.stdin!.end(options.input ?? "");
  });
}

/** Fails with the command's output when it did not exit 0. */
export function assertRan(what: string, r: RunResult): RunResult {
  if (r.code !== 0) throw new Error(`${what} exited with ${r.code ?? r.signal}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
  return r;
}

/**
 * A long-running child (a server) in its own process group, so stopping it also stops what it
 * started (`npm start` runs a shell that runs node).
 */
export class Background {
  readonly child: ChildProcess;
  output = "";
  #exited: Promise<void>;
  #exitCode: number | null | undefined;
  #waiters: (() => void)[] = [];

  constructor(command: string, args: string[], options: SpawnOptions = {}) {
    this.child = spawn(command, args, { ...options, stdio: ["ignore", "pipe", "pipe"], detached: true });
    const take = (c: Buffer): void => {
      this.output += c.toString();
      for (const w of this.#waiters.splice(0)) w();
    };
    this.child.stdout!.on("data", take);
    this.child.stderr!.on("data", take);
    this.#exited = new Promise((resolve) =>
      this.child.once("exit", (code) => {
        this.#exitCode = code;
        for (const w of this.#waiters.splice(0)) w();
        resolve();
      }),
    );
  }

  get running(): boolean {
    return this.#exitCode === undefined;
  }

  /** Waits until the output matches; fails if the process exits first or the time runs out. */
  async waitFor(pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.output.match(pattern);
      if (m) return m;
      if (!this.running) throw new Error(`process exited (${this.#exitCode}) before printing ${pattern}; output:\n${this.output}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${pattern}; output:\n${this.output}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  exited(): Promise<void> {
    return this.#exited;
  }

  /**
   * SIGTERM to the group; waits for every process in it (the leader may exit before what it
   * started, e.g. npm before the server it runs), SIGKILL to what is left after `graceMs`.
   */
  async stop(graceMs = 8_000): Promise<void> {
    if (!this.#groupAlive()) return;
    this.#signal("SIGTERM");
    const deadline = Date.now() + graceMs;
    while (this.#groupAlive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    this.#signal("SIGKILL");
    await this.#exited;
  }

  #groupAlive(): boolean {
    try {
      process.kill(-this.child.pid!, 0);
      return true;
    } catch {
      return false;
    }
  }

  #signal(signal: NodeJS.Signals): void {
    try {
      process.kill(-this.child.pid!, signal);
    } catch {
      // already gone
    }
  }
}

/**
 * This process's environment without what `npm test` / `npx` / `node --test` set about the
 * run they belong to (npm_package_*, npm_lifecycle_*, npm_config_local_prefix…,
 * NODE_TEST_CONTEXT): commands a test runs in another project must see that project only.
 * `extra` is added on top.
 */
export function cleanNpmEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_(package_|lifecycle_|command$|config_local_prefix$)/i.test(k) || k === "INIT_CWD") continue;
    // Set by node --test for its children: a nested `node --test` would report to us, not print.
    if (k === "NODE_TEST_CONTEXT") continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

/** bin/streamfn.js of this checkout, from dist/test/helpers. */
const kBin = fileURLToPath(new URL("../../../bin/streamfn.js", import.meta.url));

/**
 * Starts the real binary's `streamfn serve` on a free loopback port (no watching, no spare
 * thread), with `extra` flags, and answers once it logs where it listens.
 */
export async function serveBinary(dir: string, extra: string[] = []): Promise<{ proc: Background; url: string }> {
  const proc = new Background(process.execPath, [kBin, "serve", dir, "--port", "0", "--no-watch", "--spare-threads", "0", ...extra]);
  const m = await proc.waitFor(/streamfn listening on (http:\/\/127\.0\.0\.1:\d+)/, 60_000);
  return { proc, url: m[1]! };
}
