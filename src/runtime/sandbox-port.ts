import { parentPort, workerData } from "node:worker_threads";
import type { FromSandbox, SandboxInit, ToSandbox } from "./protocol.js";
import { decodeToSandbox, encodeFromSandbox } from "./thread-wire.js";
import type { Wire } from "./thread-wire.js";

/** The channel to the router, whichever sandbox this code runs in. */
export interface SandboxPort {
  readonly init: SandboxInit;
  postMessage(batch: FromSandbox[]): void;
  onMessage(handler: (batch: ToSandbox[]) => void): void;
  /**
   * A child process only: tells the router why it is about to exit and resolves once that
   * message is written (a thread's `error` event carries the error itself).
   */
  fatal?(message: string): Promise<void>;
  /**
   * The router is on this thread and `postMessage` is a plain call (the inline tier): nothing
   * is gained by batching, so every record goes at once.
   */
  readonly direct?: boolean;
}

export const kInitEnv = "STREAMFN_SANDBOX_INIT";

/** What a spare thread is started with: no function yet; its init comes as the first message. */
export interface SpareInit {
  spare: true;
}

/**
 * A worker thread talks over its parent port; a child process over its IPC channel. A spare
 * thread, booted ahead of need, learns which function it runs from its first message.
 */
export async function connectSandboxPort(): Promise<SandboxPort> {
  if (parentPort) {
    const port = parentPort;
    const data = workerData as SandboxInit | SpareInit;
    // The router sends nothing else until this sandbox reports ready, so no message can slip
    // past between this one-off listener and the batch listener attached after loading.
    const init = "spare" in data ? await new Promise<SandboxInit>((resolve) => port.once("message", resolve)) : data;
    return {
      init,
      postMessage: (batch) => port.postMessage(encodeFromSandbox(batch)),
      onMessage: (handler) => port.on("message", (wire: Wire) => handler(decodeToSandbox(wire))),
    };
  }
  const raw = process.env[kInitEnv];
  // The handler's environment is its own: the platform's hand-off does not stay in it.
  delete process.env[kInitEnv];
  if (process.send && raw) {
    const send = process.send.bind(process);
    // The parent going away (crash, kill -9) must not leave this process running.
    process.on("disconnect", () => process.exit(0));
    return {
      init: JSON.parse(raw) as SandboxInit,
      postMessage: (batch) => {
        send(batch);
      },
      onMessage: (handler) => process.on("message", handler as (msg: unknown) => void),
      fatal: (m) =>
        new Promise<void>((resolve) => {
          send([{ k: "fatal", m }], undefined, {}, () => resolve());
        }),
    };
  }
  throw new Error("the sandbox runtime must run in a worker thread or a child process started by streamfn");
}
