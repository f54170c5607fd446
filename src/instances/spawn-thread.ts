import { Worker } from "node:worker_threads";
import type { SandboxInit } from "../runtime/protocol.js";
import type { SpareInit } from "../runtime/sandbox-port.js";
import { runtimeEntry } from "../runtime/entries.js";
import { sandboxEnv } from "./sandbox-env.js";

const kWorkerEntry = runtimeEntry("worker-main");

/** A worker thread running the sandbox runtime, with its own V8 heap limit. */
export function spawnThread(init: SandboxInit | SpareInit, memoryMb: number): Worker {
  return new Worker(kWorkerEntry, {
    workerData: init,
    env: sandboxEnv(),
    resourceLimits: {
      maxOldGenerationSizeMb: memoryMb,
      maxYoungGenerationSizeMb: Math.max(4, Math.min(32, Math.floor(memoryMb / 8))),
    },
    // The function's stdout/stderr go straight to ours.
    stdout: false,
    stderr: false,
  });
}
