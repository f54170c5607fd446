import { StreamfnError } from "../api/errors.js";
import { validateOptions } from "../api/options.js";
import type { SandboxKind, StreamFunctionOptions } from "../api/types.js";
import { createSandbox } from "../instances/create-sandbox.js";

export const kProbeTimeoutMs = 15_000;
/** The heap a check gets: the function's own memoryMb is only known once it loaded. */
export const kProbeMemoryMb = 256;

/**
 * Loads a bundle in a throwaway sandbox and reads the function's own options. This checks at
 * deploy time that the file is a stream function, and keeps user code off the router's thread.
 */
export function probeFunction(
  bundlePath: string,
  name: string,
  kind: SandboxKind = "thread",
): Promise<StreamFunctionOptions> {
  const sandbox = createSandbox(kind, { bundlePath, functionName: name, memoryMb: kProbeMemoryMb });
  return new Promise<StreamFunctionOptions>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new StreamfnError("FUNCTION_LOAD_FAILED", `${name}: loading did not finish within ${kProbeTimeoutMs} ms`));
    }, kProbeTimeoutMs);
    sandbox.onBatch = (batch) => {
      for (const op of batch) {
        if (op.k !== "ready") continue;
        clearTimeout(timer);
        try {
          resolve(validateOptions(op.options, name));
        } catch (err) {
          reject(err);
        }
      }
    };
    sandbox.onExit = (exit) => {
      clearTimeout(timer);
      reject(new StreamfnError("FUNCTION_LOAD_FAILED", `${name}: ${exit.message.replace(/^the instance crashed: /, "")}`));
    };
  }).finally(() => sandbox.terminate());
}
