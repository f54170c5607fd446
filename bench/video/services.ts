// The processes the baselines run on: Redis, Google's functions framework (started on demand,
// stopped when idle, as a scale-to-zero FaaS platform does) and the always-on stream job.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import type { ProcessMeter } from "./proc-meter.js";

export const kRepoRoot = fileURLToPath(new URL("../../../", import.meta.url));

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface Spawned {
  child: ChildProcess;
  pid: number;
  /** The first output line that matched. */
  match: RegExpExecArray;
  readyMs: number;
}

/** Starts a process and resolves once a line of its output matches `ready`. */
export function spawnReady(cmd: string, args: string[], ready: RegExp, env: NodeJS.ProcessEnv = {}, timeoutMs = 30_000): Promise<Spawned> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: kRepoRoot, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let done = false;
    const timer = setTimeout(() => fail(new Error(`${cmd} ${args.join(" ")} not ready after ${timeoutMs} ms: ${out.slice(-2000)}`)), timeoutMs);
    const fail = (err: Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(err);
    };
    const onData = (c: Buffer): void => {
      out += c.toString();
      if (out.length > 100_000) out = out.slice(-50_000);
      const m = ready.exec(out);
      if (m && !done) {
        done = true;
        clearTimeout(timer);
        resolve({ child, pid: child.pid!, match: m, readyMs: performance.now() - started });
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.on("error", (err) => fail(err));
    child.on("exit", (code, signal) => fail(new Error(`${cmd} exited (${signal ?? code}) before it was ready: ${out.slice(-2000)}`)));
  });
}

/** Stops a child: SIGTERM, then SIGKILL after a grace period. */
export function stopChild(child: ChildProcess, graceMs = 3_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

/** A private redis-server on a free loopback port, keeping nothing on disk. */
export async function startRedis(): Promise<{ url: string; child: ChildProcess; pid: number }> {
  const port = await freePort();
  const bin = process.env.REDIS_SERVER ?? "/usr/bin/redis-server";
  const s = await spawnReady(bin, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", "/tmp"], /Ready to accept connections/);
  return { url: `redis://127.0.0.1:${port}`, child: s.child, pid: s.pid };
}

export interface FaasServiceOptions {
  label: string;
  /** Exported function name in `source`. */
  target: string;
  source: string;
  keepAliveMs: number;
  env?: NodeJS.ProcessEnv;
  meter: ProcessMeter;
}

/**
 * One function on the functions framework, scaled like a FaaS platform scales it: the first
 * request when no instance runs starts one (a cold start: the request waits for it); an
 * instance with no request for `keepAliveMs` is stopped. One instance serves concurrent
 * requests, as a Cloud Run instance does.
 */
export class FaasService {
  readonly coldStartMs: number[] = [];
  #instance: { child: ChildProcess; pid: number; url: string } | undefined;
  #starting: Promise<string> | undefined;
  #inflight = 0;
  #idle: NodeJS.Timeout | undefined;
  #stopping: Promise<void> = Promise.resolve();

  constructor(readonly options: FaasServiceOptions) {}

  /** The URL of a running instance, starting one if none runs. Pair with `release()`. */
  async acquire(): Promise<string> {
    this.#inflight++;
    clearTimeout(this.#idle);
    if (this.#instance) return this.#instance.url;
    this.#starting ??= this.#start().finally(() => (this.#starting = undefined));
    return this.#starting;
  }

  release(): void {
    if (--this.#inflight > 0) return;
    clearTimeout(this.#idle);
    this.#idle = setTimeout(() => void this.#stop(), this.options.keepAliveMs);
  }

  get running(): boolean {
    return this.#instance !== undefined;
  }

  async close(): Promise<void> {
    clearTimeout(this.#idle);
    await this.#stop();
    await this.#stopping;
  }

  async #start(): Promise<string> {
    await this.#stopping;
    const port = await freePort();
    const host = fileURLToPath(new URL("./faas-host.js", import.meta.url));
    const s = await spawnReady(process.execPath, [host, `--target=${this.options.target}`, `--source=${this.options.source}`, `--port=${port}`, "--signature-type=http"], /^URL: /m, { NODE_ENV: "development", ...this.options.env });
    this.options.meter.track(s.pid, `${this.options.label}#${this.coldStartMs.length + 1}`, false);
    this.coldStartMs.push(s.readyMs);
    this.#instance = { child: s.child, pid: s.pid, url: `http://127.0.0.1:${port}` };
    return this.#instance.url;
  }

  #stop(): Promise<void> {
    const inst = this.#instance;
    if (!inst || this.#inflight > 0) return this.#stopping;
    this.#instance = undefined;
    this.options.meter.retire(inst.pid);
    this.#stopping = stopChild(inst.child);
    return this.#stopping;
  }
}
