import type { SandboxKind } from "../api/types.js";
import { ProcessSandbox } from "./process-sandbox.js";
import type { Sandbox, SandboxSpec } from "./sandbox.js";
import { ThreadSandbox } from "./thread-sandbox.js";

export function createSandbox(kind: SandboxKind, spec: SandboxSpec): Sandbox {
  return kind === "process" ? new ProcessSandbox(spec) : new ThreadSandbox(spec, spec.spares?.take(spec.memoryMb));
}
