import type { SandboxKind } from "../api/types.js";
import { InlineSandbox } from "./inline-sandbox.js";
import { ProcessSandbox } from "./process-sandbox.js";
import type { Sandbox, SandboxSpec } from "./sandbox.js";
import { ThreadSandbox } from "./thread-sandbox.js";

export function createSandbox(kind: SandboxKind, spec: SandboxSpec): Sandbox {
  if (kind === "process") return new ProcessSandbox(spec);
  if (kind === "inline") return new InlineSandbox(spec);
  return new ThreadSandbox(spec, spec.spares?.take(spec.memoryMb));
}
