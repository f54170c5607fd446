// Runs in one throwaway worker thread at start-up: loads several function bundles and reports,
// for each, the options of its stream function, or that it failed (the registry then checks
// that one alone, for its own error). One thread boot instead of one per function.
import { pathToFileURL } from "node:url";
import { parentPort, workerData } from "node:worker_threads";
import { isStreamFunction } from "../api/define.js";

export interface CheckBatchInit {
  bundlePaths: string[];
}

/** One report per bundle, by its index in `bundlePaths`. */
export type CheckReport = { i: number; options: unknown; sources: unknown } | { i: number; failed: true };

const { bundlePaths } = workerData as CheckBatchInit;
const port = parentPort!;

// Loaded side by side: a bundle whose loading never finishes holds up no other. (No top-level
// await: the build bundles this file as CommonJS.)
void Promise.all(
  bundlePaths.map(async (path, i) => {
    let report: CheckReport;
    try {
      const mod = (await import(pathToFileURL(path).href)) as { default?: unknown };
      report = isStreamFunction(mod.default) ? { i, options: mod.default.options, sources: [...(mod.default.sources ?? [])] } : { i, failed: true };
    } catch {
      report = { i, failed: true };
    }
    port.postMessage(report);
  }),
);
