import type { EndReason, EventMeta } from "../api/types.js";

/** One buffered event: the payload and what `ctx.event` shows while the handler holds it. */
export interface ChannelEvent {
  d: unknown;
  q: number;
  t: number;
}

export interface ChannelHooks {
  /** Called once per event the handler took (or that was dropped after it stopped iterating). */
  pulled(count: number): void;
  /**
   * The handler asks for its next event: a step boundary. Called before it gets the event or
   * starts waiting for one, so what it produced in the step before leaves first.
   */
  step?(): void;
  /** The current event's metadata, updated as the handler takes events. */
  meta: EventMeta;
  ended(reason: EndReason): void;
}

const kDone: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });
const kCompactAt = 1024;

/**
 * The `events` iterator a handler consumes: a pushed queue turned into a pull iterator.
 * Its size is bounded by the router's credit window, not here: the router never sends more
 * events than the window allows until the handler has pulled earlier ones.
 */
export class EventChannel implements AsyncIterableIterator<unknown> {
  #items: ChannelEvent[] = [];
  #head = 0;
  #waiter: ((r: IteratorResult<unknown>) => void) | undefined;
  #rejecter: ((e: unknown) => void) | undefined;
  #endReason: EndReason | undefined;
  #failure: unknown;
  #detached = false;
  readonly #hooks: ChannelHooks;
  /**
   * The arrival stamp of the event the handler holds: set when it takes one, 0 again once it
   * asks for the next (or leaves the loop). An output made while the handler holds no event
   * (a summary after the input ended, a timer's output while it waits) answers no event, so
   * its wait is not an event's latency.
   */
  heldAt = 0;

  constructor(hooks: ChannelHooks) {
    this.#hooks = hooks;
  }

  get buffered(): number {
    return this.#items.length - this.#head;
  }

  push(ev: ChannelEvent): void {
    if (this.#endReason !== undefined || this.#failure !== undefined) return;
    if (this.#detached) {
      this.#hooks.pulled(1);
      return;
    }
    const waiter = this.#waiter;
    if (waiter !== undefined) {
      this.#waiter = this.#rejecter = undefined;
      this.#take(ev);
      waiter({ done: false, value: ev.d });
      return;
    }
    this.#items.push(ev);
  }

  /** No more events will come; the handler sees the end once it has taken the buffered ones. */
  end(reason: EndReason): void {
    if (this.#endReason !== undefined) return;
    this.#endReason = reason;
    if (this.#waiter !== undefined && this.buffered === 0) {
      const waiter = this.#waiter;
      this.#waiter = this.#rejecter = undefined;
      this.#hooks.ended(reason);
      waiter(kDone);
    }
  }

  /** The platform gave up on the stream: a pending or later `next()` rejects with `error`. */
  fail(error: unknown): void {
    if (this.#failure !== undefined) return;
    this.#failure = error;
    this.#dropBuffered();
    const rejecter = this.#rejecter;
    this.#waiter = this.#rejecter = undefined;
    rejecter?.(error);
  }

  next(): Promise<IteratorResult<unknown>> {
    this.#hooks.step?.();
    this.heldAt = 0;
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (this.#head < this.#items.length) {
      const ev = this.#items[this.#head]!;
      this.#items[this.#head++] = undefined as unknown as ChannelEvent;
      if (this.#head >= kCompactAt && this.#head * 2 >= this.#items.length) {
        this.#items = this.#items.slice(this.#head);
        this.#head = 0;
      }
      this.#take(ev);
      return Promise.resolve({ done: false, value: ev.d });
    }
    if (this.#endReason !== undefined) {
      this.#hooks.ended(this.#endReason);
      return Promise.resolve(kDone);
    }
    if (this.#detached) return Promise.resolve(kDone);
    return new Promise((resolve, reject) => {
      this.#waiter = resolve;
      this.#rejecter = reject;
    });
  }

  /** The handler left its loop early: drop what is buffered and everything that arrives later. */
  return(): Promise<IteratorResult<unknown>> {
    this.heldAt = 0;
    this.#detached = true;
    this.#dropBuffered();
    return Promise.resolve(kDone);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  #take(ev: ChannelEvent): void {
    const meta = this.#hooks.meta;
    meta.seq = ev.q;
    meta.receivedAt = ev.t;
    this.heldAt = ev.t;
    this.#hooks.pulled(1);
  }

  #dropBuffered(): void {
    const n = this.buffered;
    this.#items = [];
    this.#head = 0;
    if (n > 0) this.#hooks.pulled(n);
  }
}
