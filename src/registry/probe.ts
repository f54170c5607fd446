import { StreamfnError } from "../api/errors.js";
import { validateOptions } from "../api/options.js";
import { validateSources } from "../api/sources.js";
import type { StreamSource } from "../api/sources.js";
import type { SandboxKind, StreamFunctionOptions } from "../api/types.js";
import { createSandbox } from "../instances/create-sandbox.js";

export const kProbeTimeoutMs = 15_000;
/** The heap a check gets: the function's own memoryMb is only known once it loaded. */
export const kProbeMemoryMb = 256;

/** What loading a function tells about it: its own options and the broker sources it binds. */
export interface FunctionCheck {
  options: StreamFunctionOptions;
  sources: StreamSource[];
}

/** Validates what a check reported (or a cache recorded): throws INVALID_OPTIONS naming the function. */
export function validateCheck(options: unknown, sources: unknown, name: string): FunctionCheck {
  return { options: validateOptions(options as StreamFunctionOptions, name), sources: validateSources(sources, name) };
}

/**
 * Loads a bundle in a throwaway sandbox and reads the function's own options and sources. This checks at
 * deploy time that the file is a stream function, and keeps user code off the router's thread.
 */
export function probeFunction(
  bundlePath: string,
  name: string,
  kind: SandboxKind = "thread",
): Promise<FunctionCheck> {
  const sandbox = createSandbox(kind, { bundlePath, functionName: name, memoryMb: kProbeMemoryMb });
  return new Promise<FunctionCheck>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new StreamfnError("FUNCTION_LOAD_FAILED", `${name}: loading did not finish within ${kProbeTimeoutMs} ms`));
    }, kProbeTimeoutMs);
    sandbox.onBatch = (batch) => {
      for (const op of batch) {
        if (op.k !== "ready") continue;
        clearTimeout(timer);
        try {
          resolve({ options: validateOptions(op.options, name), sources: validateSources(op.sources, name) });
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
