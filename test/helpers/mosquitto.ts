import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./nats-server.js";

/** The mosquitto binary (Debian installs it in /usr/sbin), or undefined when it is not installed. */
export function mosquittoBinary(): string | undefined {
  if (existsSync("/usr/sbin/mosquitto")) return "/usr/sbin/mosquitto";
  const r = spawnSync("sh", ["-c", "command -v mosquitto"], { encoding: "utf8" });
  const path = r.stdout.trim();
  return r.status === 0 && path ? path : undefined;
}

export const kSkipWithoutMosquitto: string | false = mosquittoBinary() ? false : "mosquitto is not installed (apt-get install mosquitto): MQTT tests skipped";

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

export interface MosquittoOptions {
  /** user → password: anonymous clients are then refused. */
  users?: Record<string, string>;
  /** Extra lines for mosquitto.conf. */
  extra?: string[];
}

/**
 * A mosquitto of the test's own on a free loopback port. `restart()` stops it and starts it
 * again on the same port; `stop()` stops it by PID and removes its directory.
 */
export class TestMosquitto {
  readonly port: number;
  readonly dir: string;
  #child: ChildProcess | undefined;
  output = "";

  private constructor(port: number, dir: string) {
    this.port = port;
    this.dir = dir;
  }

  static async start(options: MosquittoOptions = {}): Promise<TestMosquitto> {
    const dir = mkdtempSync(join(tmpdir(), "sfn-mqtt-"));
    // Started as root, mosquitto drops to its own user, which must still read its files here.
    chmodSync(dir, 0o755);
    const m = new TestMosquitto(await freePort(), dir);
    const lines = [`listener ${m.port} 127.0.0.1`, "persistence false", "log_dest stderr", ...(options.extra ?? [])];
    if (options.users) {
      const pw = join(dir, "passwd");
      writeFileSync(pw, "");
      for (const [u, p] of Object.entries(options.users)) {
        const r = spawnSync("mosquitto_passwd", ["-b", pw, u, p], { encoding: "utf8" });
        if (r.status !== 0) throw new Error(`mosquitto_passwd failed: ${r.stderr}`);
      }
      chmodSync(pw, 0o644);
      lines.push("allow_anonymous false", `password_file ${pw}`);
    } else {
      lines.push("allow_anonymous true");
    }
    writeFileSync(join(dir, "mosquitto.conf"), lines.join("\n") + "\n");
    await m.#spawn();
    return m;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  async #spawn(): Promise<void> {
    const bin = mosquittoBinary();
    if (!bin) throw new Error("mosquitto is not installed");
    const child = spawn(bin, ["-c", join(this.dir, "mosquitto.conf")], { stdio: ["ignore", "pipe", "pipe"] });
    this.#child = child;
    const take = (c: Buffer): void => {
      this.output = (this.output + c.toString()).slice(-20_000);
    };
    child.stdout!.on("data", take);
    child.stderr!.on("data", take);
    const deadline = Date.now() + 15_000;
    while (!(await canConnect(this.port))) {
      if (child.exitCode !== null) throw new Error(`mosquitto exited (${child.exitCode}):\n${this.output}`);
      if (Date.now() > deadline) throw new Error(`mosquitto did not get ready:\n${this.output}`);
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

  /** Stops the broker; `start()` on the same object brings it back on the same port. */
  async pause(): Promise<void> {
    await this.#kill();
  }

  async resume(): Promise<void> {
    this.output = "";
    await this.#spawn();
  }

  async stop(): Promise<void> {
    await this.#kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
