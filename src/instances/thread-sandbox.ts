import type { EventLoopUtilization } from "node:perf_hooks";
import { Worker } from "node:worker_threads";
import { fileURLToPath } from "node:url";
import type { FromSandbox, SandboxInit, ToSandbox } from "../runtime/protocol.js";
import type { Sandbox, SandboxExit, SandboxSpec } from "./sandbox.js";

const kWorkerEntry = fileURLToPath(new URL("../runtime/worker-main.js", import.meta.url));

/** A function instance on a worker thread, with its own V8 heap limit. */
export class ThreadSandbox implements Sandbox {
  onBatch: (batch: FromSandbox[]) => void = () => {};
  onExit: (exit: SandboxExit) => void = () => {};
  readonly #worker: Worker;
  #terminating: Promise<void> | undefined;
  #exited = false;

  constructor(spec: SandboxSpec) {
    const init: SandboxInit = { bundlePath: spec.bundlePath, functionName: spec.functionName };
    this.#worker = new Worker(kWorkerEntry, {
      workerData: init,
      resourceLimits: {
        maxOldGenerationSizeMb: spec.memoryMb,
        maxYoungGenerationSizeMb: Math.max(4, Math.min(32, Math.floor(spec.memoryMb / 8))),
      },
      // The function's stdout/stderr go straight to ours.
      stdout: false,
      stderr: false,
    });
    this.#worker.on("message", (batch: FromSandbox[]) => this.onBatch(batch));
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
    this.#worker.postMessage(batch, transfer);
  }

  eventLoopUtilization(since?: EventLoopUtilization): EventLoopUtilization {
    return since ? this.#worker.performance.eventLoopUtilization(since) : this.#worker.performance.eventLoopUtilization();
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
