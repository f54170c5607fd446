import { createHash } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
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

/**
 * Bundles one function file with esbuild. Its own sources (TypeScript included) are bundled;
 * npm packages stay imports, resolved at run time from the function's directory, so native
 * packages (sharp) work. The bundle is written next to the functions, where those imports
 * resolve exactly as they would from the source file.
 */
export async function bundleFunction(file: string, name: string, outDir: string): Promise<Bundle> {
  let result: esbuild.BuildResult<{ write: false }>;
  try {
    result = await esbuild.build({
      entryPoints: [file],
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
            build.onResolve({ filter: /^streamfn$/ }, () => ({ path: kApiEntry }));
          },
        },
      ],
    });
  } catch (err) {
    const messages = (err as { errors?: esbuild.Message[] }).errors ?? [];
    const text = messages.length
      ? messages
          .map((m) => `${m.location ? `${m.location.file}:${m.location.line}:${m.location.column}: ` : ""}${m.text}`)
          .join("; ")
      : String(err);
    throw new StreamfnError("FUNCTION_LOAD_FAILED", `${name}: bundling ${file} failed: ${text}`, { cause: err });
  }
  const code = result.outputFiles[0]!.contents;
  const version = createHash("sha256").update(code).digest("hex").slice(0, 12);
  const path = join(outDir, `${name}.${version}.mjs`);
  try {
    await writeFile(path, code);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    // First bundle, or a server closing on the same directory just removed the empty folder.
    await mkdir(outDir, { recursive: true });
    await writeFile(path, code);
  }
  return { version, path };
}
