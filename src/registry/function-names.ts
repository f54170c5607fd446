import { basename, extname } from "node:path";
import { StreamfnError } from "../api/errors.js";

// The naming rules of the registry, on their own so that the CLI can check names without
// loading the registry (and with it the pools and esbuild).

const kFunctionName = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const kFunctionFile = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\.(ts|mts|js|mjs)$/;
const kSkip = /(\.d\.ts|\.test\.[a-z]+|\.spec\.[a-z]+)$/;

/** The rule for function names: 1-64 characters of A-Z a-z 0-9 _ -, starting with a letter or digit. */
export function isFunctionName(name: string): boolean {
  return kFunctionName.test(name);
}

/** Throws INVALID_REQUEST naming the rule, for a name the registry would never serve. */
export function assertFunctionName(name: string): void {
  if (isFunctionName(name)) return;
  throw new StreamfnError(
    "INVALID_REQUEST",
    `function name ${JSON.stringify(name.slice(0, 80))} is not allowed: use 1-64 characters of A-Z a-z 0-9 _ -, starting with a letter or digit`,
  );
}

/** True for file names the registry serves as functions: `name.ts` → function `name`. */
export function functionNameOf(file: string): string | undefined {
  const base = basename(file);
  if (!kFunctionFile.test(base) || kSkip.test(base)) return undefined;
  return base.slice(0, -extname(base).length);
}

