import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { isStreamFunction } from "../../src/api/define.js";
import type { StreamFunction } from "../../src/api/index.js";
import { bundleFunction } from "../../src/registry/bundler.js";

/** examples/functions, from dist/test/helpers. */
export const kExampleFunctionsDir = fileURLToPath(new URL("../../../examples/functions", import.meta.url));

/**
 * Loads one of examples/functions in-process, bundled exactly as the server bundles it
 * (TypeScript and its `streamfn` import included), so `runStream` runs the served code.
 */
export async function loadExampleFunction(name: string): Promise<StreamFunction> {
  const dir = await mkdtemp(join(tmpdir(), "streamfn-example-"));
  try {
    const bundle = await bundleFunction(join(kExampleFunctionsDir, `${name}.ts`), name, dir);
    const mod = (await import(pathToFileURL(bundle.path).href)) as { default?: unknown };
    if (!isStreamFunction(mod.default)) throw new Error(`${name}: the default export is not a stream function`);
    return mod.default;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The events of an examples/data NDJSON file, parsed, blank lines skipped (as `streamfn send` reads it). */
export async function readExampleData(file: string): Promise<unknown[]> {
  const text = await readFile(fileURLToPath(new URL(`../../../examples/data/${file}`, import.meta.url)), "utf8");
  return text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as unknown);
}
