import { preciseNow } from "../runtime/clock.js";
import { StreamRun, prefixedLogger } from "../runtime/stream-driver.js";
import type { EndReason, StreamFunction } from "./types.js";

export interface RunStreamOptions {
  streamId?: string;
  functionName?: string;
  /** What `ctx.endReason` reports once the events run out. Default `end`. */
  endReason?: EndReason;
}

/**
 * Runs a stream function in-process over the given events and resolves with its outputs,
 * in order. The same iterator and driver run inside the platform's instances, so a handler
 * that passes here behaves the same when served. Rejects with whatever the handler throws.
 */
export async function runStream<In, Out>(
  fn: StreamFunction<In, Out>,
  events: Iterable<In> | AsyncIterable<In>,
  options: RunStreamOptions = {},
): Promise<Out[]> {
  const outputs: Out[] = [];
  const streamId = options.streamId ?? "test-stream";
  const functionName = options.functionName ?? "test";
  const sink = {
    output: (value: unknown) => {
      outputs.push(value as Out);
    },
    pulled: () => {},
  };
  const run = new StreamRun(functionName, streamId, sink, prefixedLogger(`[${functionName}/${streamId}]`));
  const feeding = (async () => {
    let seq = 0;
    for await (const data of events) run.channel.push({ d: data, q: ++seq, t: preciseNow() });
    run.channel.end(options.endReason ?? "end");
  })();
  try {
    await Promise.all([run.drive(fn as StreamFunction, sink), feeding]);
  } catch (err) {
    run.abort(err instanceof Error ? err : new Error(String(err)));
    throw err;
  }
  return outputs;
}
