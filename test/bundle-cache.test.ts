// What the server keeps next to the functions: <dir>/.streamfn/ with a .gitignore of `*`,
// bundles in bundles/ (removed on a clean close), and nothing else of it touched.
import { strict as assert } from "node:assert";
import { existsSync } from "node:fs";
import { mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { assertRan, run } from "./helpers/processes.js";
import { startTestServer } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";

const echo = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({ async *handler(events) { for await (const e of events) yield e; } });`;

describe("the .streamfn folder", () => {
  it("is git-ignored, holds the bundles, and loses them (only them) on close", async () => {
    // bad.ts bundles but is no stream function: its version fails to load and leaves no bundle.
    const t = await startTestServer({ "echo.ts": echo, "bad.ts": "export default 42;" });
    try {
      assert.ok(
        t.logs.some((r) => r.msg === "deploy failed" && r.fn === "bad" && /^(FUNCTION_LOAD_FAILED|INVALID_FUNCTION)$/.test(String(r.code))),
        `bad.ts was refused: ${t.logText()}`,
      );
      const cache = join(t.dir, ".streamfn");
      assert.equal(await readFile(join(cache, ".gitignore"), "utf8").then((s) => s.split("\n").includes("*")), true);
      const bundles = await readdir(join(cache, "bundles"));
      assert.equal(bundles.length, 1);
      assert.match(bundles[0]!, /^echo\.[0-9a-f]{12}\.mjs$/);
      // Something else kept there (functions deployed through the API) is not this server's.
      await mkdir(join(cache, "deployed"));
      await writeFile(join(cache, "deployed", "kept.ts"), echo);

      const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/echo/streams`);
      c.event(1);
      c.end();
      assert.equal((await c.waitEnd()).status, "completed");

      // A repository around the functions does not see the folder at all.
      assertRan("git init", await run("git", ["init", "-q"], { cwd: t.dir }));
      const status = assertRan("git status", await run("git", ["status", "--porcelain", "--untracked-files=all"], { cwd: t.dir }));
      assert.deepEqual(status.stdout.trim().split("\n"), ["?? bad.ts", "?? echo.ts"]);

      await t.server.close();
      assert.equal(existsSync(join(cache, "bundles")), false, "bundles/ is gone");
      assert.equal(await readFile(join(cache, "deployed", "kept.ts"), "utf8"), echo);
      assert.equal(existsSync(join(cache, ".gitignore")), true);
    } finally {
      await t.close();
    }
  });

  it("leaves a .gitignore that is already there alone", async () => {
    const t = await startTestServer({ "echo.ts": echo });
    try {
      await t.server.close();
      const path = join(t.dir, ".streamfn", ".gitignore");
      await writeFile(path, "*\n!deployed/\n");
      const again = await startTestServer({}, { functionsDir: t.dir });
      await again.server.close();
      assert.equal(await readFile(path, "utf8"), "*\n!deployed/\n");
    } finally {
      await t.close();
    }
  });
});
