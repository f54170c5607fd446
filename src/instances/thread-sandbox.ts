import type { EventLoopUtilization } from "node:perf_hooks";
import type { Worker } from "node:worker_threads";
import { kJournalBytes, readJournal } from "../runtime/output-journal.js";
import type { JournalRecord } from "../runtime/output-journal.js";
import type { FromSandbox, SandboxInit, ToSandbox } from "../runtime/protocol.js";
import { decodeFromSandbox, encodeToSandbox } from "../runtime/thread-wire.js";
import type { Wire } from "../runtime/thread-wire.js";
import type { Sandbox, SandboxExit, SandboxSpec } from "./sandbox.js";
import { spawnThread } from "./spawn-thread.js";

/** A function instance on a worker thread, with its own V8 heap limit. */
export class ThreadSandbox implements Sandbox {
  onBatch: (batch: FromSandbox[]) => void = () => {};
  onExit: (exit: SandboxExit) => void = () => {};
  readonly #worker: Worker;
  readonly #journal = new SharedArrayBuffer(kJournalBytes);
  #terminating: Promise<void> | undefined;
  #exited = false;
  /** Batches for a spare thread, held until it has loaded the function (see connectSandboxPort). */
  #held: [Wire, ArrayBuffer[]][] | undefined;

  /** `spare`: an already booted thread (SpareThreads) to load the function into, instead of a new one. */
  constructor(spec: SandboxSpec, spare?: Worker) {
    const init: SandboxInit = { bundlePath: spec.bundlePath, functionName: spec.functionName, journal: this.#journal };
    if (spare) {
      this.#worker = spare;
      this.#held = [];
      spare.postMessage(init);
    } else {
      this.#worker = spawnThread(init, spec.memoryMb);
    }
    this.#worker.on("message", (wire: Wire) => {
      if (this.#held) {
        // Its first message is `ready`: from here on it listens for batches.
        const held = this.#held;
        this.#held = undefined;
        for (const [b, t] of held) this.#worker.postMessage(b, t);
      }
      this.onBatch(decodeFromSandbox(wire));
    });
    let lastError: Error | undefined;
    this.#worker.on("error", (err: Error) => {
      lastError = err;
    });
    this.#worker.on("exit", (code) => {
      this.#exited = true;
      if (this.#terminating) return;
      this.onExit(describeExit(lastError, code));
    });
  }

  post(batch: ToSandbox[], transfer: ArrayBuffer[]): void {
    if (this.#exited) return;
    const wire = encodeToSandbox(batch);
    if (this.#held) {
      this.#held.push([wire, transfer]);
      return;
    }
    this.#worker.postMessage(wire, transfer);
  }

  eventLoopUtilization(since?: EventLoopUtilization): EventLoopUtilization {
    return since ? this.#worker.performance.eventLoopUtilization(since) : this.#worker.performance.eventLoopUtilization();
  }

  unsent(): JournalRecord[] {
    return readJournal(this.#journal);
  }

  terminate(): Promise<void> {
    if (!this.#terminating) {
      this.#terminating = this.#exited ? Promise.resolve() : this.#worker.terminate().then(() => undefined);
    }
    return this.#terminating;
  }
}

function describeExit(err: Error | undefined, exitCode: number): SandboxExit {
  const code = (err as { code?: string } | undefined)?.code;
  if (code === "ERR_WORKER_OUT_OF_MEMORY") {
    return { code: "INSTANCE_OUT_OF_MEMORY", message: "the instance ran out of memory (raise memoryMb?)" };
  }
  if (err) return { code: "INSTANCE_CRASHED", message: `the instance crashed: ${err.message}` };
  return { code: "INSTANCE_CRASHED", message: `the instance exited unexpectedly with code ${exitCode}` };
}
