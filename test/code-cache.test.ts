// The installed binary compiles its CLI bundle from a V8 code cache (bin/streamfn.cjs). Code
// restored from a cache must still reach what the bundle loads with import(): esbuild for a
// function that has to be built, prom-client for /metrics, a function's module on the server's
// own thread (the inline tier). Each run here uses a copy of the package, so its cache is its own.
import { strict as assert } from "node:assert";
import { cp, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { Background } from "./helpers/processes.js";
import { StreamClient } from "./helpers/ws-client.js";

const kRepo = fileURLToPath(new URL("../..", import.meta.url));

const fn = (sandbox: string, tag: string): string => `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  sandbox: "${sandbox}",
  async *handler(events) {
    for await (const e of events) yield { tag: "${tag}", e };
  },
});`;

describe("the binary's code cache", () => {
  let pkg: string;
  let fns: string;
  let cacheDir: string;

  before(async () => {
    pkg = await mkdtemp(join(tmpdir(), "streamfn-code-cache-"));
    await cp(join(kRepo, "bin"), join(pkg, "bin"), { recursive: true });
    await cp(join(kRepo, "dist", "src"), join(pkg, "dist", "src"), {
      recursive: true,
      filter: (src) => !src.includes(".v8-cache"),
    });
    await cp(join(kRepo, "package.json"), join(pkg, "package.json"));
    await symlink(join(kRepo, "node_modules"), join(pkg, "node_modules"));
    fns = join(pkg, "fns");
    await mkdir(fns);
    cacheDir = join(pkg, "dist", "src", "cli", ".v8-cache");
  });

  after(async () => {
    await rm(pkg, { recursive: true, force: true });
  });

  async function serve(): Promise<{ proc: Background; url: string }> {
    const proc = new Background(process.execPath, [join(pkg, "bin", "streamfn.cjs"), "serve", fns, "--port", "0", "--no-watch"]);
    const m = await proc.waitFor(/streamfn listening on (http:\/\/127\.0\.0\.1:\d+)/, 60_000);
    return { proc, url: m[1]! };
  }

  async function roundTrip(url: string, name: string): Promise<unknown[]> {
    const c = await StreamClient.connect(`${url.replace(/^http/, "ws")}/v1/functions/${name}/streams`);
    c.event(1);
    c.end();
    const end = await c.waitEnd(20_000);
    assert.equal(end.type, "end", JSON.stringify(end));
    return c.outputs();
  }

  async function cacheFiles(): Promise<string[]> {
    return (await readdir(cacheDir).catch(() => [])).filter((f) => f.endsWith(".bin"));
  }

  it("is written by the first run, then used: builds, metrics and inline functions still load", async () => {
    await writeFile(join(fns, "first.ts"), fn("thread", "first"));
    const first = await serve();
    try {
      assert.deepEqual(await roundTrip(first.url, "first"), [{ tag: "first", e: 1 }]);
    } finally {
      await first.proc.stop();
    }
    const files = await cacheFiles();
    assert.equal(files.length, 1, `one cache file for serve: ${files.join(", ")}`);
    assert.match(files[0]!, /^serve-[0-9a-f]{16}-v\d+\.\d+\.\d+\.bin$/);
    const written = (await stat(join(cacheDir, files[0]!))).mtimeMs;

    // New files: built by esbuild, which the cached code imports; one of them runs inline.
    await writeFile(join(fns, "second.ts"), fn("thread", "second"));
    await writeFile(join(fns, "here.ts"), fn("inline", "here"));
    const second = await serve();
    try {
      assert.deepEqual(await roundTrip(second.url, "second"), [{ tag: "second", e: 1 }]);
      assert.deepEqual(await roundTrip(second.url, "here"), [{ tag: "here", e: 1 }]);
      const metrics = await fetch(`${second.url}/metrics`);
      assert.equal(metrics.status, 200);
      assert.match(await metrics.text(), /streamfn_/);
    } finally {
      await second.proc.stop();
    }
    assert.ok(!second.proc.output.includes("ERR_VM_DYNAMIC_IMPORT"), second.proc.output);
    assert.ok(!second.proc.output.includes("ExperimentalWarning"), second.proc.output);
    assert.equal((await stat(join(cacheDir, files[0]!))).mtimeMs, written, "an accepted cache is not written again");
  });

  it("is replaced when it cannot be used, and the server starts anyway", async () => {
    const [file] = await cacheFiles();
    assert.ok(file, "a cache from the test before");
    await writeFile(join(cacheDir, file), "not a code cache");
    const run = await serve();
    try {
      assert.deepEqual(await roundTrip(run.url, "first"), [{ tag: "first", e: 1 }]);
    } finally {
      await run.proc.stop();
    }
    const after = await readFile(join(cacheDir, file));
    assert.notEqual(after.toString("latin1"), "not a code cache", "the rejected cache was rewritten");
    assert.ok(after.length > 10_000, `a real cache (${after.length} bytes)`);
  });
});
