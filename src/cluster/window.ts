/**
 * A counting semaphore: bounds how many publishes wait for their acks at once, so a fast
 * producer is slowed to the server's pace instead of piling promises up in memory.
 */
export class Window {
  #free: number;
  #waiters: (() => void)[] = [];

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`window size must be a positive integer, got ${size}`);
    this.#free = size;
  }

  get inFlight(): number {
    return this.size - this.#free;
  }

  async acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return;
    }
    await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  release(): void {
    const next = this.#waiters.shift();
    if (next) next();
    else this.#free++;
  }
}
