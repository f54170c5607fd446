import { format } from "node:util";
import type { StreamLogger } from "../api/types.js";
import type { LogLevel } from "../router/stream-log.js";

/** Longest `ctx.log` message, in characters; the rest is cut and the cut is said. */
export const kMaxLogLineChars = 8 * 1024;
/** Lines a stream may log at once… */
const kLogBurst = 1_000;
/** …and per second after that. Past it lines are dropped and counted, not queued. */
const kLogPerSecond = 200;

/** A `ctx.log` call's arguments as one line of text, as console.log would print them. */
export function formatLogLine(args: unknown[]): string {
  let text: string;
  try {
    text = format(...args);
  } catch (err) {
    // A value whose inspection throws (a hostile getter or proxy) must not fail the handler.
    text = `[log arguments could not be formatted: ${err instanceof Error ? err.message : String(err)}]`;
  }
  if (text.length <= kMaxLogLineChars) return text;
  return `${text.slice(0, kMaxLogLineChars)}… [${text.length - kMaxLogLineChars} more characters cut]`;
}

/**
 * A token bucket per stream: a handler that logs in a tight loop sends a bounded number of
 * lines across the sandbox boundary; the rest are only counted.
 */
export class LogRateLimit {
  #tokens = kLogBurst;
  #at = performance.now();
  #dropped = 0;

  /** True when a line may go; false counts it as dropped. */
  take(): boolean {
    const now = performance.now();
    this.#tokens = Math.min(kLogBurst, this.#tokens + ((now - this.#at) * kLogPerSecond) / 1000);
    this.#at = now;
    if (this.#tokens >= 1) {
      this.#tokens--;
      return true;
    }
    this.#dropped++;
    return false;
  }

  /** Lines dropped since the last call. */
  takeDropped(): number {
    const n = this.#dropped;
    this.#dropped = 0;
    return n;
  }
}

/** A `ctx.log` whose lines go to `emit`, formatted, only as fast as `limit` lets them. */
export function streamLogger(limit: LogRateLimit, emit: (level: LogLevel, msg: string, dropped: number) => void): StreamLogger {
  const log = (level: LogLevel, args: unknown[]): void => {
    if (!limit.take()) return; // dropped before formatting: a flood costs next to nothing
    emit(level, formatLogLine(args), limit.takeDropped());
  };
  return {
    info: (...args) => log("info", args),
    warn: (...args) => log("warn", args),
    error: (...args) => log("error", args),
  };
}
