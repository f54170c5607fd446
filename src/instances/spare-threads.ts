import type { Worker } from "node:worker_threads";
import { spawnThread } from "./spawn-thread.js";

/**
 * Threads booted by bootSparesEarly before the server's settings were read, for the next
 * SpareThreads to adopt. A lone process-wide list: there is one CLI start per process.
 */
const early: { worker: Worker; memoryMb: number; exited: boolean }[] = [];

/**
 * Boots `count` spare threads with the default heap at once, as the first thing a server's
 * command does. A thread boots on the other core while this one loads the CLI and reads the
 * functions; booted later, it was the last thing the first stream waited for. A SpareThreads
 * made with other settings terminates what it cannot use.
 */
export function bootSparesEarly(count: number, memoryMb: number): Worker[] {
  const booted: Worker[] = [];
  for (let i = 0; i < count; i++) {
    const worker = spawnThread({ spare: true }, memoryMb);
    worker.unref();
    worker.on("error", () => {});
    const entry = { worker, memoryMb, exited: false };
    worker.once("exit", () => (entry.exited = true));
    early.push(entry);
    booted.push(worker);
  }
  return booted;
}

/**
 * Worker threads booted ahead of need. Booting Node in a thread is most of a cold start (25–40 ms
 * here); a spare has done that already and only has to load the function. A spare belongs to
 * no function: it holds a little memory, no CPU, and does not count as an instance, so scale to
 * zero still means zero instances. Spares are made with one heap size; a function asking for
 * another boots its own thread.
 */
export class SpareThreads {
  readonly #spares: Worker[] = [];
  #closed = false;
  #refill: NodeJS.Immediate | undefined;
  /** Instances started on a spare, for status and tests. */
  taken = 0;

  constructor(
    readonly count: number,
    readonly memoryMb: number,
  ) {
    for (const e of early.splice(0)) {
      if (e.exited) continue;
      if (e.memoryMb === memoryMb && this.#spares.length < count) this.#keep(e.worker);
      else void e.worker.terminate();
    }
    this.#fill();
  }

  get ready(): number {
    return this.#spares.length;
  }

  /** A booted thread for a sandbox with `memoryMb` of heap, or undefined (then boot one). */
  take(memoryMb: number): Worker | undefined {
    if (this.#closed || memoryMb !== this.memoryMb) return undefined;
    const worker = this.#spares.shift();
    // Refill after this turn, so the new spare's boot does not compete with the start in progress.
    this.#refill ??= setImmediate(() => {
      this.#refill = undefined;
      this.#fill();
    });
    if (!worker) return undefined;
    worker.removeAllListeners();
    worker.ref();
    this.taken++;
    return worker;
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#refill) clearImmediate(this.#refill);
    await Promise.all(this.#spares.splice(0).map((w) => w.terminate()));
  }

  #fill(): void {
    while (!this.#closed && this.#spares.length < this.count) this.#keep(spawnThread({ spare: true }, this.memoryMb));
  }

  #keep(worker: Worker): void {
    // An idle spare must not keep the process alive, nor linger in the list once dead.
    worker.unref();
    worker.on("error", () => {});
    worker.once("exit", () => {
      const i = this.#spares.indexOf(worker);
      if (i >= 0) this.#spares.splice(i, 1);
    });
    this.#spares.push(worker);
  }
}
