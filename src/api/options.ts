import { StreamfnError } from "./errors.js";
import type { ResolvedOptions, StreamFunctionOptions } from "./types.js";

export const kDefaultOptions: Readonly<ResolvedOptions> = Object.freeze({
  idleTimeoutMs: 10_000,
  maxDurationMs: 300_000,
  maxEvents: 100_000,
  maxEventBytes: 1024 * 1024,
  maxOutputs: 1_000_000,
  maxOutputBytes: 16 * 1024 * 1024,
  epilogueMs: 5_000,
  stallTimeoutMs: 30_000,
  inboxLimit: 256,
  concurrency: 64,
  minInstances: 0,
  maxInstances: 4,
  maxQueuedStreams: 1_000,
  keepAliveMs: 30_000,
  memoryMb: 256,
  unresponsiveMs: 10_000,
  sandbox: "thread",
  replay: true,
});

const kMinimums: Partial<Record<keyof ResolvedOptions, number>> = {
  idleTimeoutMs: 1,
  maxDurationMs: 1,
  maxEvents: 1,
  maxEventBytes: 1,
  maxOutputs: 1,
  maxOutputBytes: 1,
  epilogueMs: 1,
  stallTimeoutMs: 1,
  inboxLimit: 1,
  concurrency: 1,
  minInstances: 0,
  maxInstances: 1,
  maxQueuedStreams: 0,
  keepAliveMs: 0,
  memoryMb: 16,
  unresponsiveMs: 50,
};

export const kOptionNames = Object.keys(kDefaultOptions) as (keyof ResolvedOptions)[];

/**
 * Checks a partial options object, naming the offending key and value in the error.
 * Unknown keys are refused: a misspelt limit silently left at its default is worse than an error.
 */
export function validateOptions(input: unknown, where: string): StreamFunctionOptions {
  if (input === undefined) return {};
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    throw new StreamfnError("INVALID_OPTIONS", `${where}: options must be an object`);
  }
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(input)) {
    // Not options: the handler, and the sources (checked by validateSources).
    if (key === "handler" || key === "sources") continue;
    if (!Object.hasOwn(kDefaultOptions, key)) {
      throw new StreamfnError(
        "INVALID_OPTIONS",
        `${where}: unknown option "${key}" (known: ${kOptionNames.join(", ")})`,
      );
    }
    if (value === undefined) continue;
    if (key === "sandbox") {
      if (value !== "thread" && value !== "process" && value !== "inline") {
        throw new StreamfnError(
          "INVALID_OPTIONS",
          `${where}: sandbox must be "thread", "process" or "inline", got ${JSON.stringify(value)}`,
        );
      }
      out[key] = value;
      continue;
    }
    if (key === "replay") {
      if (typeof value !== "boolean") {
        throw new StreamfnError("INVALID_OPTIONS", `${where}: replay must be true or false, got ${JSON.stringify(value)}`);
      }
      out[key] = value;
      continue;
    }
    const min = kMinimums[key as keyof ResolvedOptions] ?? 0;
    if (typeof value !== "number" || !Number.isInteger(value) || value < min) {
      throw new StreamfnError(
        "INVALID_OPTIONS",
        `${where}: option "${key}" must be an integer >= ${min}, got ${JSON.stringify(value)}`,
      );
    }
    out[key] = value;
  }
  return out as StreamFunctionOptions;
}

/**
 * Later layers win. The server passes: its own defaults, then the function's options, then the
 * operator's per-function overrides, so an operator can always tighten a limit an author set.
 */
export function resolveOptions(...layers: (StreamFunctionOptions | undefined)[]): ResolvedOptions {
  const out: ResolvedOptions = { ...kDefaultOptions };
  for (const layer of layers) {
    if (!layer) continue;
    for (const key of kOptionNames) {
      const v = layer[key];
      if (v !== undefined) (out as Record<string, unknown>)[key] = v;
    }
  }
  if (out.minInstances > out.maxInstances) {
    throw new StreamfnError(
      "INVALID_OPTIONS",
      `minInstances (${out.minInstances}) must not exceed maxInstances (${out.maxInstances})`,
    );
  }
  return out;
}
