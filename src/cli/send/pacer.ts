import { setTimeout as sleep } from "node:timers/promises";

/**
 * Spaces sends evenly at `rate` per second. Each send is due one interval after the previous
 * one was due, so small timer lateness does not slow the average rate; after a longer stall
 * (backpressure, a slow disk) the schedule restarts from now instead of bursting to catch up.
 */
export class Pacer {
  readonly #intervalMs: number;
  #due: number | undefined;

  constructor(ratePerSecond: number | undefined) {
    this.#intervalMs = ratePerSecond ? 1000 / ratePerSecond : 0;
  }

  /** Waits until the next send is due, or until `signal` fires. */
  async wait(signal?: AbortSignal): Promise<void> {
    if (this.#intervalMs === 0) return;
    const now = performance.now();
    if (this.#due !== undefined && this.#due > now) {
      try {
        await sleep(this.#due - now, undefined, signal ? { signal } : undefined);
      } catch {
        return; // aborted: the caller stops
      }
    }
    const at = performance.now();
    const late = this.#due === undefined || at - this.#due > this.#intervalMs;
    this.#due = (late ? at : this.#due!) + this.#intervalMs;
  }
}
