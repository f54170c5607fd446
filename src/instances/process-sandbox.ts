import { sandboxEnv } from "./sandbox-env.js";
import { fork } from "node:child_process";
import { statSync } from "node:fs";
import type { ChildProcess } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import type { EventLoopUtilization } from "node:perf_hooks";
import type { JournalRecord } from "../runtime/output-journal.js";
import type { FromSandbox, SandboxInit, ToSandbox } from "../runtime/protocol.js";
import { runtimeEntry } from "../runtime/entries.js";
import { kInitEnv } from "../runtime/sandbox-port.js";
import type { Sandbox, SandboxExit, SandboxSpec } from "./sandbox.js";

const kWorkerEntry = runtimeEntry("worker-main");
/** The package root: the runtime's own code and its dependencies are read from here. */
const kPackageRoot = resolve(dirname(kWorkerEntry), "../../..");
const kNoUtilization: EventLoopUtilization = Object.freeze({ idle: 0, active: 0, utilization: 0 });

/**
 * The node_modules directories a bundle's imports resolve from: one in each directory from the
 * bundle's up to the root, where it exists (npm hoists packages to the project root, above
 * the functions directory). Read-only, like everything the sandbox may see.
 */
export function nodeModulesOnPath(bundlePath: string): string[] {
  const found: string[] = [];
  for (let dir = dirname(resolve(bundlePath)); ; dir = dirname(dir)) {
    const candidate = join(dir, "node_modules");
    try {
      if (statSync(candidate).isDirectory()) found.push(candidate);
    } catch {
      // none here
    }
    if (dirname(dir) === dir) return found;
  }
}

/**
 * A function instance in a child process under Node's permission model: it may read only the
 * runtime, the function's own directory tree and the node_modules directories its imports
 * resolve from, and may not write files, start processes or threads. The network is not restricted by Node 20's model.
 * Costs more than a thread (a process per instance, messages copied rather than transferred)
 * and buys a separate address space: for code trusted less than the platform.
 */
export class ProcessSandbox implements Sandbox {
  onBatch: (batch: FromSandbox[]) => void = () => {};
  onExit: (exit: SandboxExit) => void = () => {};
  readonly #child: ChildProcess;
  #terminating: Promise<void> | undefined;
  readonly #exited: Promise<void>;
  #gone = false;
  /** The child's event-loop totals as it last reported them. */
  #elu: EventLoopUtilization = kNoUtilization;
  /** What the process said it died of, if it said. */
  #fatal: string | undefined;

  constructor(spec: SandboxSpec) {
    const init: SandboxInit = { bundlePath: spec.bundlePath, functionName: spec.functionName };
    // Bundles live in <functionsDir>/.streamfn/bundles/ (see Registry).
    const functionsDir = resolve(dirname(spec.bundlePath), "../..");
    this.#child = fork(kWorkerEntry, [], {
      execArgv: [
        "--experimental-permission",
        "--disable-warning=ExperimentalWarning",
        `--allow-fs-read=${kPackageRoot}/`,
        `--allow-fs-read=${dirname(spec.bundlePath)}/`,
        `--allow-fs-read=${functionsDir}/`,
        ...nodeModulesOnPath(spec.bundlePath).map((dir) => `--allow-fs-read=${dir}/`),
        `--max-old-space-size=${spec.memoryMb}`,
      ],
      env: sandboxEnv({ [kInitEnv]: JSON.stringify(init) }),
      serialization: "advanced",
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    this.#child.on("message", (batch: FromSandbox[]) => {
      const last = batch[batch.length - 1];
      if (last?.k === "elu") {
        batch.pop();
        this.#elu = { idle: last.i, active: last.a, utilization: last.a / (last.i + last.a || 1) };
      } else if (last?.k === "fatal") {
        this.#fatal = last.m;
        return;
      }
      if (batch.length > 0) this.onBatch(batch);
    });
    this.#child.on("error", () => {
      // 'exit' follows (or the spawn failed and 'exit' reports it).
    });
    this.#exited = new Promise((done) => {
      this.#child.once("exit", (code, signal) => {
        this.#gone = true;
        done();
        if (!this.#terminating) this.onExit(describeExit(code, signal, this.#fatal));
      });
    });
  }

  post(batch: ToSandbox[], _transfer: ArrayBuffer[]): void {
    if (this.#gone || !this.#child.connected) return;
    // Binary payloads are copied by the IPC channel: processes share no memory to move them in.
    this.#child.send(batch);
  }

  /**
   * From the totals the child reports with its batches (a parent cannot read another
   * process's event loop). A child that sent nothing since `since` shows as idle.
   */
  eventLoopUtilization(since?: EventLoopUtilization): EventLoopUtilization {
    const now = this.#elu;
    if (!since) return now;
    const idle = now.idle - since.idle;
    const active = now.active - since.active;
    const total = idle + active;
    return { idle, active, utilization: total > 0 ? active / total : 0 };
  }

  unsent(): JournalRecord[] {
    // No memory is shared with a process: its outbox posts at each step boundary instead.
    return [];
  }

  terminate(): Promise<void> {
    if (!this.#terminating) {
      // The instance is being recycled or stopped; its code may be stuck in a loop, so no
      // polite signal: SIGKILL, which it cannot ignore.
      if (!this.#gone) this.#child.kill("SIGKILL");
      this.#terminating = this.#exited;
    }
    return this.#terminating;
  }
}

function describeExit(code: number | null, signal: NodeJS.Signals | null, fatal: string | undefined): SandboxExit {
  // V8 aborts the process when the heap limit is hit.
  if (signal === "SIGABRT" || code === 134) {
    return { code: "INSTANCE_OUT_OF_MEMORY", message: "the instance process ran out of memory (raise memoryMb?)" };
  }
  if (fatal) return { code: "INSTANCE_CRASHED", message: `the instance process failed: ${fatal}` };
  return {
    code: "INSTANCE_CRASHED",
    message: `the instance process exited unexpectedly (${signal ? `signal ${signal}` : `code ${code}`})`,
  };
}
