#!/usr/bin/env node
"use strict";
// Runs the CLI: one bundled CommonJS file (see scripts/build.mjs), which starts faster than its
// ~130 ES modules. This file is CommonJS too, so a start does not set up Node's ES module loader
// for it.
//
// The bundle is compiled with a V8 code cache: parsing and compiling its ~600 KB was ~15 ms of
// every server start. The cache sits beside the bundle, so only who may change the code may
// change it; it is named by the bundle's content hash (V8 checks only the source's length) and
// Node's version, and it is written once, by the first run of a command after an install or a
// build. Where it cannot be read or written, the bundle is simply compiled.
const { createHash } = require("node:crypto");
const { mkdirSync, readFileSync, renameSync, writeFileSync } = require("node:fs");
const Module = require("node:module");
const { dirname, join } = require("node:path");
const vm = require("node:vm");

const bundle = join(__dirname, "../dist/src/cli/main.bundle.cjs");

if (process.env.STREAMFN_NO_CODE_CACHE) require(bundle);
else runCached();

function runCached() {
  const source = readFileSync(bundle, "utf8");
  // Long-running commands get their own cache: each holds the functions its command ran.
  const command = ["serve", "dev", "worker", "gateway"].includes(process.argv[2]) ? process.argv[2] : "cli";
  const hash = createHash("sha256").update(source).digest("hex").slice(0, 16);
  const cacheDir = join(dirname(bundle), ".v8-cache");
  const cacheFile = join(cacheDir, `${command}-${hash}-${process.version}.bin`);
  let cachedData;
  try {
    cachedData = readFileSync(cacheFile);
  } catch {
    cachedData = undefined;
  }
  const script = new vm.Script(Module.wrap(source), { filename: bundle, cachedData });
  // The bundle's import() calls (of esbuild, prom-client, a function's module) come here: in a
  // vm.Script, import() has no loader (see src/runtime/import-module.ts).
  globalThis[Symbol.for("streamfn.import")] = (specifier) => import(specifier);
  if (cachedData === undefined || script.cachedDataRejected) {
    let written = false;
    const write = () => {
      if (written) return;
      written = true;
      try {
        mkdirSync(cacheDir, { recursive: true });
        const tmp = `${cacheFile}.${process.pid}.tmp`;
        writeFileSync(tmp, script.createCachedData());
        renameSync(tmp, cacheFile); // whole or absent, for a start that reads it meanwhile
      } catch {
        // read-only install: compile every time
      }
    };
    // After start-up, so the cache holds what starting compiled; at exit if that comes first.
    setTimeout(write, 1000).unref();
    process.once("exit", write);
  }
  const mod = new Module(bundle, module);
  mod.filename = bundle;
  mod.paths = Module._nodeModulePaths(dirname(bundle));
  mod.loaded = true;
  script.runInThisContext()(mod.exports, Module.createRequire(bundle), mod, bundle, dirname(bundle));
}
