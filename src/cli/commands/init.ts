import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, readdir, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join, relative, resolve, sep } from "node:path";
import type { Command } from "commander";
import { StreamfnError } from "../../api/errors.js";
import { kFunctionName, scaffoldFiles } from "../init-templates.js";
import { packageDir, packageVersion, withExample } from "../util.js";

export function registerInit(program: Command): void {
  const cmd = program
    .command("init")
    .description("create a project: a stream function, its test, and npm scripts to test, type-check and serve it (runs npm install)")
    .argument("[dir]", "directory to create the project in (missing or empty)", ".")
    .option("--no-install", "write the files only; do not run npm install")
    .option("--streamfn <spec>", "the project's streamfn dependency (default: how this streamfn was installed)")
    .action(async (dir: string, opts: { install: boolean; streamfn?: string }) => {
      await initProject(dir, opts);
    });
  withExample(cmd, "streamfn init my-app", "streamfn init my-app --no-install --streamfn file:../streamfn-0.1.0.tgz");
}

export interface StreamfnSpec {
  spec: string;
  /** Why this spec, for the user. */
  why: string;
}

/**
 * How a new project should depend on streamfn, judged from where this copy runs: the package
 * may not be on the registry, so a copy installed from a tarball points at that tarball, and a
 * checkout points at itself.
 */
export function detectStreamfnSpec(dir = packageDir(), version = packageVersion()): StreamfnSpec {
  const pkgDir = resolve(dir);
  const parts = pkgDir.split(sep);
  const at = parts.lastIndexOf("node_modules");
  if (at === -1) return { spec: `file:${pkgDir}`, why: "this streamfn runs from a checkout" };
  const root = parts.slice(0, at).join(sep) || sep;
  const key = parts.slice(at).join("/");
  for (const lockfile of [join(root, "node_modules", ".package-lock.json"), join(root, "package-lock.json")]) {
    const resolved = lockedResolved(lockfile, key);
    if (!resolved?.startsWith("file:") || !/\.(tgz|tar\.gz)$/.test(resolved)) continue;
    const tarball = resolve(root, resolved.slice("file:".length));
    if (existsSync(tarball)) return { spec: `file:${tarball}`, why: "the tarball this streamfn was installed from" };
    return { spec: `^${version}`, why: `this streamfn was installed from ${tarball}, which is gone; from the registry` };
  }
  return { spec: `^${version}`, why: "this streamfn's version, from the registry" };
}

function lockedResolved(lockfile: string, key: string): string | undefined {
  try {
    const lock = JSON.parse(readFileSync(lockfile, "utf8")) as { packages?: Record<string, { resolved?: unknown }> };
    const resolved = lock.packages?.[key]?.resolved;
    return typeof resolved === "string" ? resolved : undefined;
  } catch {
    return undefined;
  }
}

async function initProject(dir: string, opts: { install: boolean; streamfn?: string }): Promise<void> {
  const target = resolve(dir);
  await assertEmptyDir(target);
  const { spec, why } = opts.streamfn ? { spec: opts.streamfn, why: "--streamfn" } : detectStreamfnSpec();
  const files = scaffoldFiles({ packageName: packageNameFor(target), streamfnSpec: spec });
  const shown = relative(process.cwd(), target) || ".";
  console.log(`streamfn: creating a project in ${target}`);
  console.log(`  streamfn dependency: ${spec} (${why})`);
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(target, path)), { recursive: true });
    await writeFile(join(target, path), content, { flag: "wx" });
    console.log(`  wrote ${path}`);
  }
  if (opts.install) {
    console.log(`streamfn: running npm install in ${shown}`);
    await npmInstall(target);
  }
  const cd = shown === "." ? [] : [`cd ${/[\s'"$`\\]/.test(shown) ? JSON.stringify(shown) : shown}`];
  const steps: [string, string][] = [
    ...cd.map((c): [string, string] => [c, ""]),
    ...(opts.install ? [] : [["npm install", ""] as [string, string]]),
    ["npm test", "run the function's tests"],
    ["npm run dev", "serve functions/ on http://127.0.0.1:8080, reload on save, print each stream"],
    [`npx streamfn send ${kFunctionName} events.ndjson`, "in a second terminal: stream to it"],
  ];
  const width = Math.max(...steps.map(([c]) => c.length)) + 2;
  const lines = steps.map(([c, why]) => (why ? `${c.padEnd(width)}# ${why}` : c));
  console.log(`\nDone. Next:\n${lines.map((l) => `  ${l}`).join("\n")}`);
}

async function assertEmptyDir(target: string): Promise<void> {
  let info;
  try {
    info = await stat(target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  if (!info.isDirectory()) throw new StreamfnError("DIRECTORY_NOT_EMPTY", `${target} exists and is not a directory`);
  const entries = await readdir(target);
  if (entries.length > 0) {
    const list = entries.slice(0, 5).join(", ") + (entries.length > 5 ? ", …" : "");
    throw new StreamfnError("DIRECTORY_NOT_EMPTY", `${target} is not empty (${list}): init writes only into a missing or empty directory`);
  }
}

/** An npm package name from the directory's name. */
function packageNameFor(target: string): string {
  const name = basename(target)
    .toLowerCase()
    .replace(/[^a-z0-9._~-]+/g, "-")
    .replace(/^[._-]+|-+$/g, "");
  return name.slice(0, 214) || "stream-functions";
}

/** Runs `npm install` with npm's own output on the terminal. */
function npmInstall(cwd: string): Promise<void> {
  const windows = process.platform === "win32";
  return new Promise((done, fail) => {
    const child = spawn(windows ? "npm.cmd" : "npm", ["install"], { cwd, stdio: "inherit", env: childNpmEnv(), shell: windows });
    const failed = (why: string): void =>
      fail(new StreamfnError("INSTALL_FAILED", `npm install in ${cwd} ${why}; the project's files are written: run npm install there once the problem is fixed`));
    child.once("error", (err) => failed(`could not start (${err.message})`));
    child.once("exit", (code, signal) => (code === 0 ? done() : failed(signal ? `was stopped by ${signal}` : `exited with ${code}`)));
  });
}

/**
 * Our environment without what `npx`/`npm run` set about the project streamfn was started
 * from: the install belongs to the new project.
 */
function childNpmEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_(package_|lifecycle_|command$|config_local_prefix$)/i.test(k) || k === "INIT_CWD") continue;
    env[k] = v;
  }
  return env;
}
