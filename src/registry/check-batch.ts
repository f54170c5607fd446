import { Worker } from "node:worker_threads";
import { StreamfnError } from "../api/errors.js";
import { sandboxEnv } from "../instances/sandbox-env.js";
import type { CheckBatchInit, CheckReport } from "../runtime/check-main.js";
import { runtimeEntry } from "../runtime/entries.js";
import { kProbeMemoryMb, kProbeTimeoutMs } from "./probe.js";

const kCheckEntry = runtimeEntry("check-main");

/**
 * Checks the bundles of several function files in one throwaway worker thread (the start-up of
 * a directory: booting a thread per function is most of its cost). Per name, a promise of the
 * options the bundle's stream function declares, or of undefined when that bundle failed in the
 * batch or the thread died (out of memory, `process.exit`): such a bundle is then checked alone
 * (probeFunction), which says why. What it resolves with is unvalidated: `{ options, sources }`. Loading that does not finish in time rejects, as a probe does.
 *
 * The bundles share one thread while they load, so they are not isolated from each other as
 * separate checks are: only files of the served directory (one operator's code) are batched,
 * never uploads.
 */
export function checkBatch(bundles: { name: string; path: string }[]): Map<string, Promise<unknown>> {
  const settle = bundles.map(() => ({ resolve: (_v: unknown) => {}, reject: (_e: unknown) => {}, done: false }));
  const out = new Map<string, Promise<unknown>>();
  bundles.forEach((b, i) => {
    out.set(
      b.name,
      new Promise<unknown>((resolve, reject) => {
        settle[i]!.resolve = resolve;
        settle[i]!.reject = reject;
      }),
    );
  });
  let left = bundles.length;
  const finish = (i: number, how: (s: (typeof settle)[number]) => void): void => {
    const s = settle[i]!;
    if (s.done) return;
    s.done = true;
    how(s);
    if (--left === 0) {
      clearTimeout(timer);
      void worker.terminate();
    }
  };
  const init: CheckBatchInit = { bundlePaths: bundles.map((b) => b.path) };
  const worker = new Worker(kCheckEntry, {
    workerData: init,
    env: sandboxEnv(),
    resourceLimits: { maxOldGenerationSizeMb: kProbeMemoryMb, maxYoungGenerationSizeMb: 32 },
    stdout: false,
    stderr: false,
  });
  const timer = setTimeout(() => {
    bundles.forEach((b, i) =>
      finish(i, (s) => s.reject(new StreamfnError("FUNCTION_LOAD_FAILED", `${b.name}: loading did not finish within ${kProbeTimeoutMs} ms`))),
    );
  }, kProbeTimeoutMs);
  worker.on("message", (r: CheckReport) => finish(r.i, (s) => s.resolve("failed" in r ? undefined : { options: r.options, sources: r.sources })));
  const gone = (): void => bundles.forEach((_b, i) => finish(i, (s) => s.resolve(undefined)));
  worker.on("error", gone);
  worker.on("exit", gone);
  return out;
}
