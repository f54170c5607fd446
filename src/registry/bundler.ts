import { createHash } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import { StreamfnError } from "../api/errors.js";

/** Our own public entry: a function's `import "streamfn"` is bundled against it. */
const kApiEntry = fileURLToPath(new URL("../api/index.js", import.meta.url));

export interface Bundle {
  /** A short content hash: the version of the function. */
  version: string;
  path: string;
}

/** Source held in memory (an uploaded function), bundled as if it were the file `sourcefile`. */
export interface SourceInput {
  contents: string;
  /** The name the source goes by in the bundle's source map and in error messages. */
  sourcefile: string;
  /** Where its relative imports resolve from. */
  resolveDir: string;
  loader: "ts" | "js";
}

export interface BuildSettings {
  /**
   * Keep `import "streamfn"` an import instead of bundling our API in: for a bundle made on
   * one machine (`streamfn deploy`) and bundled again by the server that runs it, which then
   * links it to its own API.
   */
  apiExternal?: boolean;
}

/**
 * Bundles one function with esbuild. Its own sources (TypeScript included) are bundled; npm
 * packages stay imports, resolved at run time from where the bundle is written, so native
 * packages (sharp) work.
 */
export async function buildFunction(
  input: string | SourceInput,
  name: string,
  settings: BuildSettings = {},
): Promise<Uint8Array> {
  const from = typeof input === "string" ? input : input.sourcefile;
  const entry: esbuild.BuildOptions =
    typeof input === "string"
      ? { entryPoints: [input] }
      : { stdin: { contents: input.contents, sourcefile: input.sourcefile, resolveDir: input.resolveDir, loader: input.loader } };
  let result: esbuild.BuildResult<{ write: false }>;
  try {
    result = await esbuild.build({
      ...entry,
      bundle: true,
      write: false,
      platform: "node",
      format: "esm",
      target: "node20",
      packages: "external",
      sourcemap: "inline",
      logLevel: "silent",
      plugins: [
        {
          name: "streamfn-api",
          setup(build: esbuild.PluginBuild) {
            build.onResolve({ filter: /^streamfn$/ }, () =>
              settings.apiExternal ? { path: "streamfn", external: true } : { path: kApiEntry },
            );
          },
        },
      ],
    });
  } catch (err) {
    const messages = (err as { errors?: esbuild.Message[] }).errors ?? [];
    const text = messages.length
      ? messages
          .map((m) => `${m.location ? `${locationName(m.location.file, input)}:${m.location.line}:${m.location.column}: ` : ""}${m.text}`)
          .join("; ")
      : String(err);
    throw new StreamfnError("FUNCTION_LOAD_FAILED", `${name}: bundling ${from} failed: ${text}`, { cause: err });
  }
  return result.outputFiles[0]!.contents;
}

/** esbuild names source given in memory relative to the working directory; the name it was given reads better. */
function locationName(file: string, input: string | SourceInput): string {
  return typeof input !== "string" && resolve(file) === input.sourcefile ? input.sourcefile : file;
}

/**
 * Bundles one function (a file, or source in memory) and writes the bundle to `outDir`, next
 * to the functions, where its npm imports resolve exactly as they would from the source file.
 */
export async function bundleFunction(input: string | SourceInput, name: string, outDir: string): Promise<Bundle> {
  const code = await buildFunction(input, name);
  const version = createHash("sha256").update(code).digest("hex").slice(0, 12);
  await mkdir(outDir, { recursive: true });
  const path = join(outDir, `${name}.${version}.mjs`);
  await writeFile(path, code);
  return { version, path };
}
