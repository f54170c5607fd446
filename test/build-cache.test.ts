// The build cache: a restart reuses the bundle and load check of a function whose sources did
// not change, and never a stale, foreign or damaged one.
import { strict as assert } from "node:assert";
import { mkdir, mkdtemp, readFile, readdir, rm, unlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import { startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";

const fn = (body: string, imports = ""): string => `
import { defineStreamFunction } from "streamfn";
${imports}
export default defineStreamFunction({ concurrency: 3, async *handler(events) { for await (const e of events) yield ${body}; } });`;

/**
 * Writes a file as an edit made a while ago: a build is recorded only if none of its files was
 * written just before or while it ran (see BuildCache.store).
 */
async function writeAged(path: string, text: string, mtime = new Date(Date.now() - 60_000)): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, text);
  await utimes(path, mtime, mtime);
}

/** A server on a fresh directory holding `files` (written a while ago); its close also removes the directory. */
async function startWith(files: Record<string, string>): Promise<TestServer> {
  const dir = await mkdtemp(join(tmpdir(), "streamfn-cache-"));
  for (const [file, text] of Object.entries(files)) await writeAged(join(dir, file), text);
  const t = await startTestServer({}, { functionsDir: dir });
  return { ...t, dir, close: async () => { await t.close(); await rm(dir, { recursive: true, force: true }); } };
}

/** What one stream of one event (2) gets back from `name`. */
async function outputOf(t: TestServer, name: string): Promise<unknown> {
  const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/${name}/streams`);
  c.event(2);
  c.end();
  assert.equal((await c.waitEnd()).status, "completed");
  return c.records.find((r) => r.type === "output")?.data;
}

function deployedLine(t: TestServer, name: string): Record<string, unknown> {
  const line = t.logs.find((r) => r.msg === "deployed" && r.fn === name);
  assert.ok(line, `${name} deployed: ${t.logText()}`);
  return line;
}

/** Starts a server on `dir` again (the first server must be closed), returns it and what it logged for `name`. */
async function restart(dir: string, name: string, options = {}): Promise<{ t: TestServer; line: Record<string, unknown> }> {
  const t = await startTestServer({}, { functionsDir: dir, ...options });
  return { t, line: deployedLine(t, name) };
}

describe("the build cache", () => {
  it("reuses the bundle and check of an unchanged function, and serves it the same", async () => {
    const first = await startWith({ "echo.ts": fn("e") });
    try {
      const line = deployedLine(first, "echo");
      assert.equal(line.cached, undefined, "nothing to reuse on the first start");
      assert.equal(await outputOf(first, "echo"), 2);
      await first.server.close();
      const files = await readdir(join(first.dir, ".streamfn", "build-cache"));
      assert.deepEqual(files.sort(), [`echo.${String(line.version)}.mjs`, "echo.json"]);

      const { t, line: again } = await restart(first.dir, "echo");
      try {
        assert.equal(again.cached, true, t.logText());
        assert.equal(again.version, line.version);
        assert.equal(await outputOf(t, "echo"), 2);
        // The options its own code sets came from the cached check, and still apply.
        assert.equal(t.server.registry.current("echo")?.options.concurrency, 3);
      } finally {
        await t.server.close();
      }
      const off = await restart(first.dir, "echo", { buildCache: false });
      await off.t.server.close();
      assert.equal(off.line.cached, undefined, "buildCache: false bundles again");
    } finally {
      await first.close();
    }
  });

  it("a function's broker sources come back with its cached check", async () => {
    const withSources = `import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  sources: [{ mqtt: "sensors/+/burst", output: { topic: "alerts/{streamId}" } }],
  async *handler(events) { for await (const e of events) yield e; },
});
`;
    const first = await startWith({ "src.ts": withSources });
    try {
      const sourcesOf = (t: TestServer) => [...t.server.registry.functions()].find((f) => f.name === "src")?.sources;
      const expected = sourcesOf(first);
      assert.equal(expected?.length, 1);
      await first.server.close();
      const { t, line } = await restart(first.dir, "src");
      try {
        assert.equal(line.cached, true, t.logText());
        assert.deepEqual(sourcesOf(t), expected);
      } finally {
        await t.server.close();
      }
    } finally {
      await first.close();
    }
  });

  it("bundles and checks again a function whose file changed", async () => {
    const first = await startWith({ "f.ts": fn("e") });
    try {
      const v1 = deployedLine(first, "f").version;
      await first.server.close();
      await writeAged(join(first.dir, "f.ts"), fn("Number(e) * 10"));
      const { t, line } = await restart(first.dir, "f");
      try {
        assert.equal(line.cached, undefined);
        assert.notEqual(line.version, v1);
        assert.equal(await outputOf(t, "f"), 20);
      } finally {
        await t.server.close();
      }
      // The new build replaced the old entry: the next start reuses it.
      const third = await restart(first.dir, "f");
      await third.t.server.close();
      assert.equal(third.line.cached, true);
      assert.equal(third.line.version, line.version);
    } finally {
      await first.close();
    }
  });

  it("bundles and checks again a function when a file it imports changed", async () => {
    const first = await startWith({
      "f.ts": fn("scale(Number(e))", `import { scale } from "./lib/scale.js";`),
      "lib/scale.ts": "export const scale = (n: number): number => n * 2;\n",
    });
    try {
      assert.equal(await outputOf(first, "f"), 4);
      await first.server.close();
      await writeAged(join(first.dir, "lib", "scale.ts"), "export const scale = (n: number): number => n * 3;\n");
      const { t, line } = await restart(first.dir, "f");
      try {
        assert.equal(line.cached, undefined, t.logText());
        assert.equal(await outputOf(t, "f"), 6);
      } finally {
        await t.server.close();
      }
    } finally {
      await first.close();
    }
  });

  it("does not trust an entry written by another streamfn version", async () => {
    const first = await startWith({ "echo.ts": fn("e") });
    try {
      await first.server.close();
      const entryPath = join(first.dir, ".streamfn", "build-cache", "echo.json");
      const entry = JSON.parse(await readFile(entryPath, "utf8")) as { stamp: string };
      assert.match(entry.stamp, /streamfn@\d/);
      entry.stamp = entry.stamp.replace(/streamfn@\S+/, "streamfn@0.0.0-other");
      await writeFile(entryPath, JSON.stringify(entry));
      const { t, line } = await restart(first.dir, "echo");
      await t.server.close();
      assert.equal(line.cached, undefined);
      // Rewritten by this version: trusted again next time.
      assert.doesNotMatch((JSON.parse(await readFile(entryPath, "utf8")) as { stamp: string }).stamp, /0\.0\.0-other/);
    } finally {
      await first.close();
    }
  });

  it("rebuilds a damaged entry, bundle or check instead of failing", async () => {
    const first = await startWith({ "echo.ts": fn("e") });
    try {
      const version = String(deployedLine(first, "echo").version);
      await first.server.close();
      const dir = join(first.dir, ".streamfn", "build-cache");
      const entryPath = join(dir, "echo.json");
      const good = await readFile(entryPath, "utf8");

      // Not JSON at all.
      await writeFile(entryPath, good.slice(0, good.length / 2));
      let r = await restart(first.dir, "echo");
      assert.equal(r.line.cached, undefined);
      assert.equal(await outputOf(r.t, "echo"), 2);
      await r.t.server.close();

      // A bundle that is not the one the entry names (truncated on disk).
      const code = join(dir, `echo.${version}.mjs`);
      await writeFile(code, (await readFile(code)).subarray(0, 40));
      r = await restart(first.dir, "echo");
      assert.equal(r.line.cached, undefined);
      assert.equal(await outputOf(r.t, "echo"), 2);
      await r.t.server.close();

      // A recorded check with options no function may have: checked again in a sandbox.
      const entry = JSON.parse(await readFile(entryPath, "utf8")) as { checks: Record<string, { options: Record<string, unknown>; sources: unknown[] }> };
      assert.equal(entry.checks.thread?.options.concurrency, 3);
      assert.deepEqual(entry.checks.thread?.sources, []);
      entry.checks.thread = { options: { concurrency: -1 }, sources: [] };
      await writeFile(entryPath, JSON.stringify(entry));
      r = await restart(first.dir, "echo");
      try {
        assert.equal(r.line.version, version);
        assert.equal(r.t.server.registry.current("echo")?.options.concurrency, 3);
        assert.equal(await outputOf(r.t, "echo"), 2);
      } finally {
        await r.t.server.close();
      }
    } finally {
      await first.close();
    }
  });

  it("forgets the entries of functions whose files are gone", async () => {
    const first = await startWith({ "a.ts": fn("e"), "b.ts": fn("e") });
    try {
      await first.server.close();
      const dir = join(first.dir, ".streamfn", "build-cache");
      assert.deepEqual((await readdir(dir)).filter((f) => f.endsWith(".json")).sort(), ["a.json", "b.json"]);
      await unlink(join(first.dir, "b.ts"));
      // Half a write a killed server left an hour ago goes too; one of a writer at work stays.
      await writeAged(join(dir, "a.json.1234.x.partial"), "{", new Date(Date.now() - 3_600_000));
      await writeFile(join(dir, "a.json.5678.y.partial"), "{");
      const { t } = await restart(first.dir, "a");
      await t.server.close();
      assert.deepEqual((await readdir(dir)).map((f) => f.split(".").slice(0, 2).join(".")).sort(), ["a.json", "a.json", `a.${String(t.logs.find((r) => r.msg === "deployed")?.version)}`].sort());
    } finally {
      await first.close();
    }
  });

  it("does not record a build whose file was written as it was bundled", async () => {
    // A write esbuild may or may not have seen: its mtime is not before the build began.
    const first = await startWith({ "a.ts": fn("e") });
    try {
      await first.server.close();
      await writeAged(join(first.dir, "a.ts"), fn("Number(e) + 1"), new Date(Date.now() + 60_000));
      const second = await restart(first.dir, "a");
      assert.equal(await outputOf(second.t, "a"), 3);
      await second.t.server.close();
      assert.equal(second.line.cached, undefined);
      const third = await restart(first.dir, "a");
      await third.t.server.close();
      assert.equal(third.line.cached, undefined, "the build was not recorded: bundled again");
    } finally {
      await first.close();
    }
  });

  it("does not cache a function that fails its load check as good", async () => {
    const bad = `import { defineStreamFunction } from "streamfn";
throw new Error("boom at load");
export default defineStreamFunction({ async *handler() {} });`;
    const first = await startWith({ "bad.ts": bad });
    try {
      await first.server.close();
      for (let i = 0; i < 2; i++) {
        const t = await startTestServer({}, { functionsDir: first.dir });
        await t.server.close();
        const failed = t.logs.find((r) => r.msg === "deploy failed" && r.fn === "bad");
        assert.ok(failed, `start ${i + 2} still refuses bad.ts: ${t.logText()}`);
        assert.match(String(failed.message), /boom at load/);
      }
    } finally {
      await first.close();
    }
  });
});
