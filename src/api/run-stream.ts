import { preciseNow } from "../runtime/clock.js";
import { formatLogLine } from "../runtime/sandbox-log.js";
import { StreamRun, prefixedLogger } from "../runtime/stream-driver.js";
import type { StreamLogEntry } from "../router/stream-log.js";
import type { EndReason, StreamFunction, StreamLogger } from "./types.js";

export interface RunStreamOptions {
  streamId?: string;
  functionName?: string;
  /** What `ctx.endReason` reports once the events run out. Default `end`. */
  endReason?: EndReason;
  /**
   * Gets each `ctx.log` line, formatted and capped as on the server (util.format, 8 KiB), so
   * a test can assert on what its handler logs. Without it lines go to the console, prefixed
   * with `[function/stream]`.
   */
  onLog?: (entry: StreamLogEntry) => void;
}

/** Events handed to the handler ahead of what it has taken: the platform's instance window. */
const kWindow = 64;

/**
 * Runs a stream function in-process over the given events and resolves with its outputs,
 * in order. The same iterator and driver run inside the platform's instances, so a handler
 * that passes here behaves the same when served. Rejects with whatever the handler throws
 * (or, if the input iterable fails first, with the input's error).
 *
 * The input is read only as fast as the handler takes events (at most a window ahead), and
 * no further once the handler has finished: a lazy or endless input works as a stream would.
 */
export async function runStream<In, Out>(
  fn: StreamFunction<In, Out>,
  events: Iterable<In> | AsyncIterable<In>,
  options: RunStreamOptions = {},
): Promise<Out[]> {
  const outputs: Out[] = [];
  const streamId = options.streamId ?? "test-stream";
  const functionName = options.functionName ?? "test";
  let taken = 0;
  let finished = false;
  let wake: (() => void) | undefined;
  const sink = {
    output: (value: unknown) => {
      outputs.push(value as Out);
    },
    pulled: (n: number) => {
      taken += n;
      const w = wake;
      wake = undefined;
      w?.();
    },
  };
  const onLog = options.onLog;
  const log: StreamLogger = onLog
    ? {
        info: (...args) => onLog({ time: Date.now(), level: "info", msg: formatLogLine(args) }),
        warn: (...args) => onLog({ time: Date.now(), level: "warn", msg: formatLogLine(args) }),
        error: (...args) => onLog({ time: Date.now(), level: "error", msg: formatLogLine(args) }),
      }
    : prefixedLogger(`[${functionName}/${streamId}]`);
  const run = new StreamRun(functionName, streamId, sink, log);
  let inputFailure: { error: unknown } | undefined;
  const feeding = (async () => {
    let seq = 0;
    for await (const data of events) {
      if (finished) return; // leaving the loop closes the input iterator
      run.channel.push({ d: data, q: ++seq, t: preciseNow() });
      while (seq - taken >= kWindow && !finished) await new Promise<void>((r) => (wake = r));
    }
    if (!finished) run.channel.end(options.endReason ?? "end");
  })();
  feeding.catch((error: unknown) => {
    if (finished) return;
    inputFailure = { error };
    // The handler's pending next() rejects with the input's own error.
    run.abort(error as Error);
  });
  try {
    await run.drive(fn as StreamFunction, sink);
  } catch (err) {
    run.abort(err instanceof Error ? err : new Error(String(err)));
    throw err;
  } finally {
    finished = true;
    wake?.();
  }
  if (inputFailure) throw inputFailure.error;
  return outputs;
}
