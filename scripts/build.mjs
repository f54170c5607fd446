#!/usr/bin/env node
// Builds into dist/ without ever leaving it half-empty: a server started from this tree loads
// dist/src/runtime/worker-main.bundle.cjs (or worker-main.js) from disk at every cold start, so
// deleting dist/ first, as a plain `rm -rf dist && tsc` does, fails every cold start while
// tsc runs. Instead each project is compiled into a fresh directory next to dist/, every file
// is moved into place with rename(2) (atomic: a reader sees the old file or the new one), and
// only then are files the new build no longer has deleted.
//
//   node scripts/build.mjs <tsconfig>... [--check <tsconfig>]...
//
// Positional projects are compiled into dist/; --check projects are only type-checked.
// A failed compile leaves dist/ untouched.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readdir, rename, rm, rmdir } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const kCliEntry = join("src", "cli", "main.js");
/** Each entry a process or thread starts from, and the one file it is bundled into. */
const kBundles = [
  [kCliEntry, join("src", "cli", "main.bundle.cjs")],
  [join("src", "runtime", "worker-main.js"), join("src", "runtime", "worker-main.bundle.cjs")],
  [join("src", "runtime", "check-main.js"), join("src", "runtime", "check-main.bundle.cjs")],
];
const kCliExternal = ["esbuild", "prom-client", "mqtt", "@nats-io/*", "bufferutil", "utf-8-validate", "typescript", "playwright-core", "sharp", "@ffmpeg-installer/*", "uplot"];
const root = resolve(fileURLToPath(new URL("..", import.meta.url)));
const dist = join(root, "dist");
const tsc = createRequire(join(root, "package.json")).resolve("typescript/bin/tsc");

const emit = [];
const check = [];
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--check") {
    const project = args[++i];
    if (!project) fail("--check needs a tsconfig file");
    check.push(project);
  } else emit.push(args[i]);
}
if (emit.length === 0 && check.length === 0) fail("usage: node scripts/build.mjs <tsconfig>... [--check <tsconfig>]...");

await removeAbandonedBuilds();
// Next to dist/ (same file system, so rename works); `dist-*/` is git-ignored.
const staging = join(root, `dist-build-${process.pid}`);
try {
  for (const project of emit) runTsc(["-p", project, "--outDir", staging]);
  for (const project of check) runTsc(["-p", project]);
  if (existsSync(join(staging, kCliEntry))) await bundleEntries(staging);
  if (emit.length > 0) await replaceInto(staging, dist);
} catch (err) {
  console.error(`build: ${err.message}`);
  process.exitCode = 1;
} finally {
  await rm(staging, { recursive: true, force: true });
}

/**
 * The CLI and the server as one file, which bin/streamfn.cjs loads: Node's ES module loader
 * pays per module (resolve, read, compile, link), and ~130 of ours, with pino's and commander's
 * CommonJS files (compiled one by one and scanned for export names), made up most of a
 * server's start. The same goes for the sandbox runtime, which every worker thread and child
 * process loads anew, and for the load-check thread. A bundle is CommonJS because an ES module
 * bundle either hoists every package import to its top (so what the CLI loads lazily, such as
 * prom-client, esbuild and the broker clients, would load at every start) or, split into
 * chunks to keep them lazy, is ~30 modules again; in CommonJS a lazily imported module's
 * require() runs when it does. Each bundle sits beside the module it bundles, so every path
 * derived from import.meta.url (the runtime entries, the package root) is the same; the public
 * API still loads from its own files.
 */
async function bundleEntries(into) {
  const { build } = await import(pathToFileURL(createRequire(join(root, "package.json")).resolve("esbuild")).href);
  for (const [entry, outfile] of kBundles) {
    await build({
      entryPoints: [join(into, entry)],
      outfile: join(into, outfile),
      bundle: true,
      format: "cjs",
      platform: "node",
      target: "node20",
      // Bundled: our modules, commander, pino and ws. Kept out: what loads lazily or off the
      // serving path (esbuild, prom-client, the broker clients) and native addons.
      external: kCliExternal,
      define: { "import.meta.url": "__streamfnModuleUrl" },
      minifyWhitespace: true,
      minifySyntax: true,
      banner: { js: 'const __streamfnModuleUrl = require("node:url").pathToFileURL(__filename).href;' },
      logLevel: "warning",
    });
  }
}

function runTsc(tscArgs) {
  const result = spawnSync(process.execPath, [tsc, ...tscArgs], { cwd: root, stdio: "inherit" });
  if (result.status !== 0) throw new Error(`tsc ${tscArgs.join(" ")} failed${result.status === null ? ` (${result.signal})` : ""}; dist/ is unchanged`);
}

/**
 * Moves every file of `from` into `to`. Files that are new to `to` go first, so an updated
 * module never imports one that is not there yet. Then, within the top-level folders this
 * build produced (dist/src for a src-only build), files it did not produce are deleted.
 */
async function replaceInto(from, to) {
  const files = await listFiles(from);
  const fresh = files.filter((f) => !existsSync(join(to, f)));
  const updated = files.filter((f) => existsSync(join(to, f)));
  for (const f of [...fresh, ...updated]) {
    await mkdir(dirname(join(to, f)), { recursive: true });
    await rename(join(from, f), join(to, f));
  }
  const produced = new Set(files);
  for (const top of new Set(files.map((f) => f.split(sep)[0]))) {
    const dir = join(to, top);
    for (const f of await listFiles(dir)) {
      const rel = join(top, f);
      if (!produced.has(rel)) await rm(join(to, rel), { force: true });
    }
    await removeEmptyDirs(dir);
  }
}

async function listFiles(dir) {
  const out = [];
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true, recursive: true });
  } catch (err) {
    if (err.code === "ENOENT") return out;
    throw err;
  }
  for (const e of entries) if (!e.isDirectory()) out.push(relative(dir, join(e.parentPath ?? e.path, e.name)));
  return out;
}

async function removeEmptyDirs(dir) {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) await removeEmptyDirs(join(dir, e.name));
  if ((await readdir(dir)).length === 0) await rmdir(dir).catch(() => {});
}

/** Staging folders of builds that were killed: their process is gone. */
async function removeAbandonedBuilds() {
  for (const name of await readdir(root)) {
    const m = /^dist-build-(\d+)$/.exec(name);
    if (!m || Number(m[1]) === process.pid || isRunning(Number(m[1]))) continue;
    await rm(join(root, name), { recursive: true, force: true });
  }
}

function isRunning(pid) {
  try {
    process.kill(pid, 0); // signal 0 only asks whether the process exists
    return true;
  } catch (err) {
    return err.code === "EPERM";
  }
}

function fail(message) {
  console.error(`build: ${message}`);
  process.exit(1);
}
