import type { MessagePort } from "node:worker_threads";
import type { ErrorRecord } from "../api/errors.js";
import type { OutputJournal } from "./output-journal.js";
import type { FromSandbox } from "./protocol.js";

/** Longest an output or credit waits in the outbox while the sandbox's turn goes on. */
const kMaxHoldMs = 5;
/** How often a child process reports its event-loop utilization (the router samples every 100 ms). */
const kLoadReportMs = 100;

/**
 * Messages from a sandbox to the router, batched: pull credits are summed per stream within a
 * turn, and records go out together once per turn of the event loop, so a busy sandbox costs
 * one message per batch, not one per output.
 *
 * What a handler produced must still reach the router if the handler then blocks the event
 * loop (a CPU loop on its next event): a batch held here when the loop is stuck would be lost
 * with the instance. Two ways, one per sandbox:
 * - with a journal (thread sandbox): every output is also written to shared memory, cleared
 *   whenever a batch is posted; the router reads what never arrived when it gives up on the
 *   instance. Batching is untouched.
 * - without one (process sandbox: no memory to share): every output is posted at once (the
 *   IPC write reaches the pipe before the handler runs on), and at each step boundary
 *   (`step()`: the handler asks for its next event or starts waiting for output credit) the
 *   credits gathered since go too. A handler with one output per event costs one message per
 *   event either way; one with many outputs per event pays a message per output, the price of
 *   not losing them in the sandbox meant for code trusted less.
 * Either way a stream's end (`done`) is posted before any other handler runs.
 */
export class SandboxOutbox {
  #ops: FromSandbox[] = [];
  #pulls = new Map<number, number>();
  /** Something waits to be posted. */
  #pending = false;
  #pendingSince = 0;
  /** A turn-end flush is scheduled (it may find nothing left to do). */
  #immediate = false;
  readonly #port: Pick<MessagePort, "postMessage">;
  readonly #refused: (s: number, error: ErrorRecord) => void;
  readonly #journal: OutputJournal | undefined;
  readonly #reportLoad: boolean;
  readonly #direct: boolean;
  #loadReportedAt = 0;

  /** `refused` hears of a stream whose output could not be cloned; it must end that stream. */
  /** `reportLoad`: a child process, whose event-loop utilization rides along with its batches. */
  /** `direct`: the port is a call into the router on this thread (SandboxPort.direct): no batching. */
  constructor(
    port: Pick<MessagePort, "postMessage">,
    refused: (s: number, error: ErrorRecord) => void,
    journal?: OutputJournal,
    reportLoad = false,
    direct = false,
  ) {
    this.#port = port;
    this.#refused = refused;
    this.#journal = journal;
    this.#reportLoad = reportLoad;
    this.#direct = direct;
  }

  send(op: FromSandbox): void {
    if (this.#direct) {
      this.#port.postMessage([op]);
      return;
    }
    this.#ops.push(op);
    this.#schedule();
  }

  /** An output, `n`-th of stream `s`; `t` is the arrival stamp of the event the handler held. */
  output(s: number, n: number, d: string | Uint8Array, t: number): void {
    if (this.#direct) {
      this.#port.postMessage([{ k: "out", s, d, t }]);
      return;
    }
    const journal = this.#journal;
    if (journal) {
      if (!journal.record(s, n, t, d)) {
        this.#flush(); // clears the journal
        if (!journal.record(s, n, t, d)) {
          // Larger than the journal: it goes on its own, now.
          this.#ops.push({ k: "out", s, d, t });
          this.#pending = true;
          this.#flush();
          return;
        }
      }
      this.#ops.push({ k: "out", s, d, t });
      this.#schedule();
      return;
    }
    this.#ops.push({ k: "out", s, d, t });
    this.#pending = true;
    this.#flush();
  }

  pull(s: number, n: number): void {
    if (this.#direct) {
      this.#port.postMessage([{ k: "pull", s, n }]);
      return;
    }
    this.#pulls.set(s, (this.#pulls.get(s) ?? 0) + n);
    this.#schedule();
  }

  /**
   * A handler reached a step boundary. Without a journal, what it produced goes out before it
   * (or another handler) runs again. Credits alone can wait for the turn's end: losing them
   * loses nothing.
   */
  step(): void {
    if (this.#journal) return;
    if (this.#ops.length > 0) this.#flush();
  }

  /** Posts everything now: a stream ended, and its end must not wait behind other handlers. */
  flushNow(): void {
    this.#flush();
  }

  #schedule(): void {
    if (this.#pending) {
      // A handler that works through buffered events runs as one long chain of microtasks, so
      // the turn can last long; past kMaxHoldMs what it produced so far goes out at once.
      if (performance.now() - this.#pendingSince > kMaxHoldMs) this.#flush();
      return;
    }
    this.#pending = true;
    this.#pendingSince = performance.now();
    if (this.#immediate) return;
    this.#immediate = true;
    setImmediate(this.#atTurnEnd);
  }

  readonly #atTurnEnd = (): void => {
    this.#immediate = false;
    this.#flush();
  };

  #flush(): void {
    if (!this.#pending) return;
    this.#pending = false;
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
    if (this.#reportLoad) {
      const now = performance.now();
      if (now - this.#loadReportedAt >= kLoadReportMs) {
        this.#loadReportedAt = now;
        const elu = performance.eventLoopUtilization();
        ops.push({ k: "elu", i: elu.idle, a: elu.active });
      }
    }
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
    this.#journal?.clear();
  }
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
  const denied = accessDenied(err);
  if (denied) return { code: "SANDBOX_ACCESS_DENIED", message: `the handler failed: ${denied}`, name: "Error" };
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

/**
 * The process sandbox's refusal (Node's permission model), said with what was refused: Node's
 * own message ("Access to this API has been restricted") names neither the path nor the kind.
 */
export function accessDenied(err: unknown): string | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const e = err as { code?: unknown; permission?: unknown; resource?: unknown };
  if (readString(() => e.code) !== "ERR_ACCESS_DENIED") return undefined;
  const permission = readString(() => e.permission) ?? "access";
  const resource = readString(() => e.resource);
  return `the process sandbox denied ${permission}${resource ? ` of ${resource}` : ""} (ERR_ACCESS_DENIED)`;
}

/** Why a sandbox is about to exit, for the router: access refusals named, else the error's message. */
export function describeFatal(err: unknown): string {
  return accessDenied(err) ?? (err instanceof Error ? readString(() => err.message) || String(err) : String(err));
}
