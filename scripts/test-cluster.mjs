#!/usr/bin/env node
// Runs the cluster test files one at a time (each spawns nats-server, workers and gateways, so
// they do not share the two cores with each other). A file that fails is run once more and the
// first failure is printed in full either way: a rare hang of these multi-process tests (seen
// about once in a dozen full runs, never reproduced alone) must neither pass unnoticed nor
// sink a run whose every test passed on the second go. A file that fails twice fails the run.
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const dir = fileURLToPath(new URL("../dist/test/", import.meta.url));
const files = readdirSync(dir).filter((f) => /^cluster-.*\.test\.js$/.test(f)).sort();
const flags = ["--test", "--test-concurrency=1", "--test-timeout=300000", "--test-force-exit"];
let failed = 0;
const flaky = [];
for (const f of files) {
  console.log(`# ${f}`);
  const run = () => spawnSync(process.execPath, [...flags, join(dir, f)], { stdio: ["ignore", "pipe", "pipe"], encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  let r = run();
  process.stdout.write(r.stdout);
  process.stderr.write(r.stderr);
  if (r.status === 0) continue;
  console.log(`\n# ${f} failed (exit ${r.status ?? r.signal}); running it once more`);
  r = run();
  process.stdout.write(r.stdout);
  process.stderr.write(r.stderr);
  if (r.status === 0) flaky.push(f);
  else failed++;
}
if (flaky.length > 0) console.log(`\n# FLAKY: ${flaky.join(", ")} failed once and passed when run again (see the first run's output above)`);
console.log(`\n# cluster test files: ${files.length}, failed twice: ${failed}`);
process.exit(failed > 0 ? 1 : 0);
