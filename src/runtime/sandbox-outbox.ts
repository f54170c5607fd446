import type { MessagePort } from "node:worker_threads";
import type { ErrorRecord } from "../api/errors.js";
import type { FromSandbox } from "./protocol.js";

/** Longest an output or credit waits in the outbox while the sandbox's turn goes on. */
const kMaxHoldMs = 5;

/**
 * Messages from a sandbox to the router, flushed once per event-loop turn. Pull credits are
 * summed per stream within a turn, so a handler that takes 100 events costs one record.
 */
export class SandboxOutbox {
  #ops: FromSandbox[] = [];
  #pulls = new Map<number, number>();
  #scheduled = false;
  #scheduledAt = 0;
  readonly #port: Pick<MessagePort, "postMessage">;
  readonly #refused: (s: number, error: ErrorRecord) => void;

  /** `refused` hears of a stream whose output could not be cloned; it must end that stream. */
  constructor(port: Pick<MessagePort, "postMessage">, refused: (s: number, error: ErrorRecord) => void) {
    this.#port = port;
    this.#refused = refused;
  }

  send(op: FromSandbox): void {
    this.#ops.push(op);
    this.#schedule();
  }

  pull(s: number, n: number): void {
    this.#pulls.set(s, (this.#pulls.get(s) ?? 0) + n);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled) {
      // A handler that works through buffered events runs as one long chain of microtasks, so
      // the turn can last long; past kMaxHoldMs what it produced so far goes out at once.
      if (performance.now() - this.#scheduledAt > kMaxHoldMs) this.#flush();
      return;
    }
    this.#scheduled = true;
    this.#scheduledAt = performance.now();
    setImmediate(this.#flush);
  }

  readonly #flush = (): void => {
    if (!this.#scheduled) return; // flushed early; this is the stale setImmediate
    this.#scheduled = false;
    const ops = this.#ops;
    this.#ops = [];
    // Credits go first: the router should refill inboxes before it reads outputs.
    if (this.#pulls.size > 0) {
      const credits: FromSandbox[] = [];
      for (const [s, n] of this.#pulls) credits.push({ k: "pull", s, n });
      this.#pulls.clear();
      ops.unshift(...credits);
    }
    if (ops.length === 0) return;
    try {
      this.#port.postMessage(ops);
    } catch {
      // Outputs travel as JSON text or bytes, so this should not happen; if one op still cannot
      // be cloned it must not sink the batch: send one by one and fail only that op's stream.
      for (const op of ops) {
        try {
          this.#port.postMessage([op]);
        } catch (err) {
          if (op.k === "out") {
            this.#refused(op.s, {
              code: "OUTPUT_NOT_SERIALIZABLE",
              message: `output could not be sent: ${err instanceof Error ? err.message : String(err)}`,
            });
          }
        }
      }
    }
  };
}

/** Longest stack that crosses to the router (for the server's log). */
const kMaxStackChars = 16 * 1024;

/**
 * What a handler's failure reports. Always HANDLER_ERROR: a stream the platform aborted
 * (stall, epilogue, shutdown) is ended by the router itself, so whatever the handler throws
 * afterwards is never reported, and a handler cannot pass itself off as a platform failure.
 * The name goes to the producer; the stack, taken here where the error was thrown, only to
 * the server's log.
 */
export function toErrorRecord(err: unknown): ErrorRecord {
  if (!(err instanceof Error)) return { code: "HANDLER_ERROR", message: String(err) };
  const name = readString(() => err.name) ?? "Error";
  const record: ErrorRecord = { code: "HANDLER_ERROR", message: readString(() => err.message) || name, name };
  const stack = readString(() => err.stack);
  if (stack) record.stack = stack.length > kMaxStackChars ? `${stack.slice(0, kMaxStackChars)}\n    …` : stack;
  return record;
}

/** A property of user code's error that may be a throwing getter or not a string at all. */
function readString(get: () => unknown): string | undefined {
  try {
    const v = get();
    return typeof v === "string" ? v : undefined;
  } catch {
    return undefined;
  }
}
