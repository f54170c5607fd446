import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Background } from "./processes.js";
import { TestNatsServer } from "./nats-server.js";

/** dist/src/cli/main.js, from dist/test/helpers. */
const kCli = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

/** A `streamfn worker` or `streamfn gateway` child process of the real CLI, with its JSON-line log. */
export class ClusterProc {
  readonly bg: Background;
  constructor(readonly role: "worker" | "gateway", args: string[]) {
    this.bg = new Background(process.execPath, [kCli, role, ...args], { env: { ...process.env, NO_COLOR: "1" } });
  }
  get pid(): number {
    return this.bg.child.pid!;
  }
  /** The log lines (JSON) printed so far. */
  lines(): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const l of this.bg.output.split("\n")) {
      if (!l.startsWith("{")) continue;
      try {
        out.push(JSON.parse(l) as Record<string, unknown>);
      } catch {
        // a partial line
      }
    }
    return out;
  }
  /** Stream ids this worker took (its "stream taken" log lines). */
  taken(): string[] {
    return this.lines()
      .filter((l) => l.msg === "stream taken")
      .map((l) => String(l.stream));
  }
  signal(sig: NodeJS.Signals): void {
    try {
      process.kill(this.pid, sig);
    } catch {
      // gone
    }
  }
  stop(): Promise<void> {
    this.signal("SIGCONT");
    return this.bg.stop(3_000);
  }
}

/** nats-server, a functions directory and the worker and gateway processes started over them. */
export class TestCluster {
  readonly procs: ClusterProc[] = [];
  /** `--memory` unless the cluster was started with `{ file: true }` (state that survives a nats-server restart). */
  storageArgs: string[] = ["--memory"];
  private constructor(
    readonly nats: TestNatsServer,
    readonly dir: string,
    readonly prefix: string,
  ) {}

  static async start(functions: Record<string, string>, prefix = "e2e", opts: { file?: boolean } = {}): Promise<TestCluster> {
    const dir = await mkdtemp(join(tmpdir(), "streamfn-cluster-"));
    for (const [file, source] of Object.entries(functions)) {
      await mkdir(dirname(join(dir, file)), { recursive: true });
      await writeFile(join(dir, file), source);
    }
    const nats = await TestNatsServer.start();
    const c = new TestCluster(nats, dir, prefix);
    if (opts.file) c.storageArgs = [];
    return c;
  }

  async worker(name: string, leaseMs = 2_000, extra: string[] = []): Promise<ClusterProc> {
    const p = new ClusterProc("worker", ["--nats", this.nats.url, "--prefix", this.prefix, ...this.storageArgs, "--lease-ms", String(leaseMs), "--name", name, ...extra, this.dir]);
    this.procs.push(p);
    await p.bg.waitFor(/"msg":"worker ready"/, 60_000);
    return p;
  }

  async gateway(extra: string[] = []): Promise<{ proc: ClusterProc; url: string; wsUrl: string }> {
    const p = new ClusterProc("gateway", ["--nats", this.nats.url, "--prefix", this.prefix, ...this.storageArgs, "--port", "0", ...extra]);
    this.procs.push(p);
    const m = await p.bg.waitFor(/"url":"(http:\/\/[^"]+)"/, 60_000);
    const url = m[1]!;
    return { proc: p, url, wsUrl: url.replace(/^http/, "ws") };
  }

  async close(): Promise<void> {
    await Promise.all(this.procs.map((p) => p.stop()));
    await this.nats.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}
