import { createHash } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import type * as esbuild from "esbuild";
import { StreamfnError } from "../api/errors.js";
import { importModule } from "../runtime/import-module.js";

/** Our own public entry: a function's `import "streamfn"` is bundled against it. */
const kApiEntry = fileURLToPath(new URL("../api/index.js", import.meta.url));
/** Our own compiled sources: bundled into functions, but never the user's to watch. */
const kOwnDir = dirname(dirname(kApiEntry)) + sep;

export interface Build {
  /** A short content hash: the version of the function. */
  version: string;
  code: Uint8Array;
  /** The user's source files the bundle was made from (absolute; no node_modules, none of ours). */
  inputs: string[];
  /** Every file on disk the bundle was made from, streamfn's own included (absolute): what a cached build is checked against. */
  sources: string[];
  /** Whether the file has a default export (a stream function must be one). */
  hasDefaultExport: boolean;
}

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
 * The settings every bundle is made with, by name: part of what a cached bundle must match
 * (change it with any change to the options below).
 */
export const kBuildFormat = "bundle:1 platform=node format=esm target=node20 packages=external sourcemap=inline api=bundled";

/**
 * Bundles one function (a file, or source in memory) with esbuild, in memory. Its own sources
 * (TypeScript included) are bundled; npm packages stay imports, resolved at run time from
 * where the bundle is written, so native packages (sharp) work. The metafile says which files
 * went in, for watching.
 */
export async function buildFunction(input: string | SourceInput, name: string, settings: BuildSettings = {}): Promise<Build> {
  const from = typeof input === "string" ? input : input.sourcefile;
  const entry: esbuild.BuildOptions =
    typeof input === "string"
      ? { entryPoints: [input] }
      : { stdin: { contents: input.contents, sourcefile: input.sourcefile, resolveDir: input.resolveDir, loader: input.loader } };
  let result: esbuild.BuildResult<{ write: false; metafile: true }>;
  const workingDir = process.cwd();
  // Loaded on first use: a start whose bundles all come from the cache never loads it.
  const { build } = await importModule<typeof esbuild>("esbuild");
  try {
    result = await build({
      ...entry,
      bundle: true,
      write: false,
      metafile: true,
      absWorkingDir: workingDir,
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
  const code = result.outputFiles[0]!.contents;
  const version = createHash("sha256").update(code).digest("hex").slice(0, 12);
  const sources = Object.keys(result.metafile.inputs)
    // Other namespaces (`ns:path`) and in-memory source are not files on disk.
    .filter((p) => (!/^[a-z-]+:/.test(p) || /^[A-Za-z]:[\\/]/.test(p)) && p !== "<stdin>")
    .map((p) => resolve(workingDir, p));
  const inputs = sources.filter((p) => !p.startsWith(kOwnDir) && !p.split(/[\\/]/).includes("node_modules"));
  const output = Object.values(result.metafile.outputs)[0];
  return { version, code, inputs, sources, hasDefaultExport: output?.exports.includes("default") ?? false };
}

/** esbuild names source given in memory relative to the working directory; the name it was given reads better. */
function locationName(file: string, input: string | SourceInput): string {
  return typeof input !== "string" && resolve(file) === input.sourcefile ? input.sourcefile : file;
}

/**
 * Where the files a failed build could not find would be (absolute): watched, so the build is
 * tried again when they appear. Empty for other failures.
 */
export function unresolvedImports(err: unknown): string[] {
  const messages = ((err as { cause?: { errors?: esbuild.Message[] } } | undefined)?.cause?.errors ?? []) as esbuild.Message[];
  const out: string[] = [];
  for (const m of messages) {
    const spec = /^Could not resolve "(\.{1,2}\/[^"]*)"/.exec(m.text)?.[1];
    if (spec && m.location) out.push(resolve(dirname(resolve(process.cwd(), m.location.file)), spec));
  }
  return out;
}

/**
 * Writes a build next to the functions, where its package imports resolve exactly as they
 * would from the source file.
 */
export async function writeBundle(build: Build, name: string, outDir: string): Promise<Bundle> {
  const path = join(outDir, `${name}.${build.version}.mjs`);
  try {
    await writeFile(path, build.code);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    // First bundle, or a server closing on the same directory just removed the empty folder.
    await mkdir(outDir, { recursive: true });
    await writeFile(path, build.code);
  }
  return { version: build.version, path };
}

/** Bundles one function (a file, or source in memory) and writes the bundle into `outDir`. */
export async function bundleFunction(input: string | SourceInput, name: string, outDir: string): Promise<Bundle> {
  return writeBundle(await buildFunction(input, name), name, outDir);
}
