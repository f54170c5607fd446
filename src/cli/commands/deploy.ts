import { readdir, stat } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import type { Command } from "commander";
import { StreamfnError } from "../../api/errors.js";
import { assertFunctionName, functionNameOf } from "../../registry/function-names.js";
import { callServer } from "../client.js";
import type { ServerTarget } from "../client.js";
import { formatKiB, progress, progressDone, renderTable } from "../format.js";
import { printJson, serverOf, withTarget } from "../target.js";
import type { TargetFlags } from "../target.js";
import { withExample } from "../util.js";

interface DeployFlags extends TargetFlags {
  to?: string;
  name?: string;
}

/** What the server said to one upload, or why it did not get there. */
export type DeployOutcome =
  | { name: string; file: string; version: string; previous: string | null; unchanged: boolean }
  | { name: string; file: string; error: { code: string; message: string } };

export function registerDeploy(program: Command): void {
  const cmd = withTarget(
    program
      .command("deploy")
      .description(
        "bundle function files here (npm packages stay imports, resolved on the server) and upload each to a running server as a new version",
      )
      .argument("<path>", "a function file, or a directory: every function file in it (name.ts → function name)")
      .option("--to <url>", "server URL (same as --url)")
      .option("--name <name>", "function name for a single file (default: the file's name)"),
  ).action(async (path: string, flags: DeployFlags) => {
    const target = serverOf({ ...flags, url: flags.to ?? flags.url });
    const files = await functionFiles(path, flags.name);
    const outcomes: DeployOutcome[] = [];
    for (const { file, name } of files) outcomes.push(await deployOne(target, file, name));
    progressDone();
    const failed = outcomes.filter((o) => "error" in o);
    if (flags.json) printJson(outcomes);
    else printOutcomes(outcomes, target);
    if (failed.length > 0) process.exitCode = 1;
  });
  withExample(cmd, "streamfn deploy ./functions --to http://127.0.0.1:8080", "streamfn deploy ./enrich.ts --name enrich-v2");
}

/** The files to deploy and the function name each becomes. */
async function functionFiles(path: string, name: string | undefined): Promise<{ file: string; name: string }[]> {
  const full = resolve(path);
  let isDir: boolean;
  try {
    isDir = (await stat(full)).isDirectory();
  } catch (err) {
    throw new StreamfnError("INVALID_REQUEST", `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (isDir) {
    if (name !== undefined) throw new StreamfnError("INVALID_REQUEST", "--name names a single file's function; a directory deploys each file under its own name");
    const files = (await readdir(full))
      .filter((e) => functionNameOf(e) !== undefined)
      .sort()
      .map((e) => ({ file: join(full, e), name: functionNameOf(e)! }));
    if (files.length === 0) {
      throw new StreamfnError("INVALID_REQUEST", `${path} has no function files (name.ts, .mts, .js or .mjs; not .d.ts, .test.* or .spec.*)`);
    }
    return files;
  }
  const fnName = name ?? functionNameOf(full);
  if (fnName === undefined) {
    throw new StreamfnError(
      "INVALID_REQUEST",
      `${basename(full)} is not a function file name (name.ts, .mts, .js or .mjs; 1-64 characters of A-Z a-z 0-9 _ -); give --name`,
    );
  }
  assertFunctionName(fnName);
  return [{ file: full, name: fnName }];
}

async function deployOne(target: ServerTarget, file: string, name: string): Promise<DeployOutcome> {
  try {
    progress(`bundling ${basename(file)}…`);
    // esbuild is loaded by the command that bundles, not by every `streamfn` start.
    const { buildFunction } = await import("../../registry/bundler.js");
    const bundle = (await buildFunction(file, name, { apiExternal: true })).code;
    progress(`uploading ${name} (${formatKiB(bundle.byteLength)}) to ${target.url}…`);
    const answer = await callServer<{ version: string; previous: string | null; unchanged: boolean }>(
      target,
      "PUT",
      `/v1/functions/${encodeURIComponent(name)}`,
      { contentType: "application/javascript", data: bundle },
    );
    return { name, file, version: answer.version, previous: answer.previous, unchanged: answer.unchanged };
  } catch (err) {
    if (!(err instanceof StreamfnError)) throw err;
    // Unreachable server or wrong token: every other file would fail the same way.
    if (err.code === "INTERNAL" || err.code === "UNAUTHORIZED" || err.code === "FORBIDDEN") throw err;
    return { name, file, error: err.toRecord() };
  }
}

function printOutcomes(outcomes: DeployOutcome[], target: ServerTarget): void {
  const rows = outcomes.map((o) => {
    if ("error" in o) return [o.name, "-", `failed: ${o.error.code}`];
    const result = o.unchanged ? "unchanged" : o.previous ? `replaced ${o.previous}` : "new function";
    return [o.name, o.version, result];
  });
  console.log(renderTable(["FUNCTION", "VERSION", "RESULT"], rows));
  for (const o of outcomes) if ("error" in o) console.error(`streamfn: ${o.error.code}: ${o.error.message}`);
  const ok = outcomes.filter((o) => !("error" in o)).length;
  console.log(`\n${ok} of ${outcomes.length} deployed to ${target.url}`);
}
