import type { EventLoopUtilization } from "node:perf_hooks";
import type { JournalRecord } from "../runtime/output-journal.js";
import type { FromSandbox, ToSandbox } from "../runtime/protocol.js";
import type { SpareThreads } from "./spare-threads.js";

/** Why a sandbox went away without being asked to. */
export interface SandboxExit {
  code: "INSTANCE_CRASHED" | "INSTANCE_OUT_OF_MEMORY" | "FUNCTION_LOAD_FAILED";
  message: string;
}

/**
 * What an instance needs from the thing its function runs in. `thread` implements it with
 * worker_threads; another isolation (a child process) would implement the same four members.
 */
export interface Sandbox {
  post(batch: ToSandbox[], transfer: ArrayBuffer[]): void;
  /** Called with each batch the sandbox sends. */
  onBatch: (batch: FromSandbox[]) => void;
  /** Called once if the sandbox dies on its own (crash, out of memory, failed load). */
  onExit: (exit: SandboxExit) => void;
  /** Stops it now; resolves once it is gone. Safe to call twice. */
  terminate(): Promise<void>;
  /** Event-loop utilization of the sandbox since `since` (or since it started): how busy its handlers keep it. */
  eventLoopUtilization(since?: EventLoopUtilization): EventLoopUtilization;
  /**
   * Outputs the sandbox produced but never posted (it blocked or died with them batched), for
   * a sandbox that can tell (see OutputJournal); read when the instance gives up on it.
   */
  unsent(): JournalRecord[];
  /**
   * The sandbox runs on the router's thread (the inline tier): batches are best posted at the
   * end of the current task, not batched up to the next turn, since no thread waits for them.
   */
  readonly sharesThread?: boolean;
}

export interface SandboxSpec {
  bundlePath: string;
  functionName: string;
  memoryMb: number;
  /** Booted threads to take from, when a thread sandbox starts. */
  spares?: SpareThreads;
}
