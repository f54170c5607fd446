import type { EndReason, EventMeta, StreamContext, StreamFunction, StreamLogger } from "../api/types.js";
import { EventChannel } from "./event-channel.js";

export interface DriverSink {
  /** An output. A returned promise means "wait before producing the next one" (output backpressure). */
  output(value: unknown): void | Promise<void>;
  /** Events the handler has taken; the caller turns these into credits for the producer side. */
  pulled(count: number): void;
  /** A step boundary of the handler (see ChannelHooks.step). */
  step?(): void;
}

/** One running handler invocation: its iterator, its context and the promise of its completion. */
export class StreamRun {
  readonly channel: EventChannel;
  readonly ctx: StreamContext;
  readonly controller = new AbortController();
  #endReason: EndReason | undefined;

  constructor(functionName: string, streamId: string, sink: DriverSink, log: StreamLogger) {
    const meta: EventMeta = { seq: 0, receivedAt: 0 };
    this.channel = new EventChannel({
      meta,
      pulled: (n) => sink.pulled(n),
      ...(sink.step ? { step: sink.step } : {}),
      ended: (reason) => {
        this.#endReason = reason;
      },
    });
    const run = this;
    this.ctx = {
      streamId,
      functionName,
      event: meta,
      get endReason() {
        return run.#endReason;
      },
      signal: this.controller.signal,
      log,
    };
  }

  /** Runs the handler to completion; rejects with whatever it threw. */
  async drive(fn: StreamFunction, sink: DriverSink): Promise<void> {
    const result: unknown = fn.handler(this.channel, this.ctx);
    if (isAsyncIterable(result)) {
      for await (const value of result) {
        if (value === undefined) continue;
        const wait = sink.output(value);
        if (wait !== undefined) await wait;
      }
      return;
    }
    const value = await result;
    if (value !== undefined) {
      const wait = sink.output(value);
      if (wait !== undefined) await wait;
    }
  }

  /** The platform gives up: the handler's pending `next()` rejects and `ctx.signal` fires. */
  abort(error: Error): void {
    this.channel.fail(error);
    if (!this.controller.signal.aborted) this.controller.abort(error);
  }
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === "function"
  );
}

export function prefixedLogger(prefix: string): StreamLogger {
  return {
    info: (...args) => console.log(prefix, ...args),
    warn: (...args) => console.warn(prefix, ...args),
    error: (...args) => console.error(prefix, ...args),
  };
}
