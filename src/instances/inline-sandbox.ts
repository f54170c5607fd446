import type { EventLoopUtilization } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import type { JournalRecord } from "../runtime/output-journal.js";
import type { FromSandbox, ToSandbox } from "../runtime/protocol.js";
import { runSandbox } from "../runtime/sandbox-runtime.js";
import type { Sandbox, SandboxExit, SandboxSpec } from "./sandbox.js";

/**
 * Failed loads per bundle. A module is evaluated once per process: a load that succeeded is
 * shared by every later inline instance of that version, but one that failed would stay failed
 * (the module cache keeps the error), so a retry imports it under a new URL.
 */
const failedLoads = new Map<string, number>();

/**
 * In a thread or a process sandbox a handler's unhandled promise rejection is logged and the
 * instance goes on; Node's default for the server's own process is to exit. Once inline code
 * runs here, the server keeps the sandboxes' rule for it (a rejection cannot be traced to the
 * code that made it, so the server's own are logged the same way from then on).
 */
let rejectionsLogged = false;
function logRejections(): void {
  if (rejectionsLogged) return;
  rejectionsLogged = true;
  process.on("unhandledRejection", (reason) => {
    console.warn("streamfn: unhandled promise rejection (inline function code?):", reason);
  });
}

const kNoLoad: EventLoopUtilization = Object.freeze({ idle: 0, active: 0, utilization: 0 });

/**
 * The `inline` tier: the sandbox runtime on the router's own thread. Events and outputs are
 * handed over as plain calls (no thread messages, no copies, no wake-ups), so a stream costs
 * about what a handler called from a socket's message callback costs. It isolates nothing: the
 * function shares the server's heap, event loop and environment, so a handler that blocks the
 * loop stalls every stream of the server, and a throw from a timer it left behind reaches the
 * server's process. For functions the operator trusts as much as the server itself.
 */
export class InlineSandbox implements Sandbox {
  readonly sharesThread = true;
  onBatch: (batch: FromSandbox[]) => void = () => {};
  onExit: (exit: SandboxExit) => void = () => {};
  #deliver: ((batch: ToSandbox[]) => void) | undefined;
  /** Batches sent before the runtime listened (the module still loading). */
  #held: ToSandbox[][] = [];
  #stopped = false;

  constructor(spec: SandboxSpec) {
    logRejections();
    const port = {
      init: { bundlePath: spec.bundlePath, functionName: spec.functionName, importUrl: importUrlOf(spec.bundlePath) },
      direct: true,
      postMessage: (batch: FromSandbox[]) => {
        if (!this.#stopped) this.onBatch(batch);
      },
      onMessage: (handler: (batch: ToSandbox[]) => void) => {
        this.#deliver = handler;
        const held = this.#held;
        this.#held = [];
        for (const b of held) handler(b);
      },
    };
    runSandbox(port).catch((err: unknown) => {
      failedLoads.set(spec.bundlePath, (failedLoads.get(spec.bundlePath) ?? 0) + 1);
      if (this.#stopped) return;
      this.#stopped = true;
      const message = err instanceof Error ? err.message : String(err);
      this.onExit({ code: "FUNCTION_LOAD_FAILED", message: `the function failed to load: ${message}` });
    });
  }

  post(batch: ToSandbox[]): void {
    if (this.#stopped) return;
    if (this.#deliver) this.#deliver(batch);
    else this.#held.push(batch);
  }

  eventLoopUtilization(): EventLoopUtilization {
    // Every inline instance runs on the server's one loop: another instance would not add a
    // core, so placement must not start one for load (it would for a busy thread).
    return kNoLoad;
  }

  unsent(): JournalRecord[] {
    return []; // every output is handed over the moment it is yielded
  }

  terminate(): Promise<void> {
    if (!this.#stopped) {
      // The handlers still running here stop with their streams: their pending `next()`
      // rejects and `ctx.signal` fires, as when a thread is terminated under them.
      this.#deliver?.([{ k: "stop" }]);
      this.#stopped = true;
    }
    return Promise.resolve();
  }
}

function importUrlOf(bundlePath: string): string {
  const href = pathToFileURL(bundlePath).href;
  const failed = failedLoads.get(bundlePath);
  return failed === undefined ? href : `${href}?attempt=${failed + 1}`;
}
