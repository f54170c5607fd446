import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export type ChildReport = Record<string, unknown> & { event: string; worker: string };

const kScript = fileURLToPath(new URL("./cluster-worker-child.js", import.meta.url));

/** A cluster worker child process (cluster-worker-child.ts) and what it has reported so far. */
export class WorkerChild {
  readonly child: ChildProcess;
  readonly reports: ChildReport[] = [];
  stderr = "";

  constructor(url: string, prefix: string, fn: string, worker: string, leaseMs: number, slots: number) {
    this.child = spawn(process.execPath, [kScript, url, prefix, fn, worker, String(leaseMs), String(slots)], { stdio: ["pipe", "pipe", "pipe"] });
    createInterface({ input: this.child.stdout! }).on("line", (l) => {
      try {
        this.reports.push(JSON.parse(l) as ChildReport);
      } catch {
        this.stderr += `${l}\n`;
      }
    });
    this.child.stderr!.on("data", (c: Buffer) => (this.stderr += c.toString()));
  }

  get pid(): number {
    return this.child.pid!;
  }

  find(event: string, streamId?: string): ChildReport | undefined {
    return this.reports.find((r) => r.event === event && (streamId === undefined || r.streamId === streamId));
  }

  send(cmd: object): void {
    this.child.stdin!.write(`${JSON.stringify(cmd)}\n`);
  }

  signal(sig: NodeJS.Signals): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(sig);
  }

  /** SIGKILL (works on a stopped process too) and wait for the exit. */
  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once("exit", () => resolve()));
    this.child.kill("SIGKILL");
    await exited;
  }
}
