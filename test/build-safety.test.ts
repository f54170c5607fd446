// `npm run build` / `npm test` in a tree a server runs from: scripts/build.mjs must never leave
// a module missing while the server cold-starts instances (each loads
// dist/src/runtime/worker-main.js and its imports from disk).
import { strict as assert } from "node:assert";
import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { after, describe, it } from "node:test";
import { freePort } from "./helpers/contract-util.js";
import { Background, assertRan, run } from "./helpers/processes.js";
import { StreamClient } from "./helpers/ws-client.js";

const kRepo = fileURLToPath(new URL("../../", import.meta.url));

// One slot per instance and no keep-alive: every stream is a cold start.
const kColdFunction = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  concurrency: 1,
  keepAliveMs: 0,
  async *handler(events) {
    for await (const e of events) yield { got: e };
  },
});`;

describe("building while a server runs from the same tree", () => {
  let tree: string | undefined;
  let server: Background | undefined;
  after(async () => {
    await server?.stop();
    if (tree) await rm(tree, { recursive: true, force: true });
  });

  it("fails no cold start while dist/ is rebuilt", async () => {
    // A copy of what the package build needs (sharing node_modules), so this test's builds
    // do not touch the dist/ the other tests run from.
    tree = await mkdtemp(join(tmpdir(), "streamfn-build-"));
    await cp(join(kRepo, "src"), join(tree, "src"), { recursive: true });
    await cp(join(kRepo, "scripts"), join(tree, "scripts"), { recursive: true });
    for (const f of ["package.json", "tsconfig.json", "tsconfig.package.json"]) await cp(join(kRepo, f), join(tree, f));
    await symlink(join(kRepo, "node_modules"), join(tree, "node_modules"), "dir");
    const build = (): Promise<unknown> => promisify(execFile)(process.execPath, ["scripts/build.mjs", "tsconfig.package.json"], { cwd: tree });
    await build();

    const functions = join(tree, "functions");
    await mkdir(functions);
    await writeFile(join(functions, "cold.ts"), kColdFunction);
    const port = await freePort();
    server = new Background(process.execPath, [join(tree, "dist/src/cli/main.js"), "serve", functions, "--port", String(port), "--spare-threads", "0", "--no-watch"]);
    await server.waitFor(/listening on/);

    const statuses: string[] = [];
    const oneStream = async (i: number): Promise<void> => {
      const c = await StreamClient.connect(`ws://127.0.0.1:${port}/v1/functions/cold/streams`);
      c.event({ i });
      c.end();
      const end = await c.waitEnd(20_000);
      statuses.push(end.status === "completed" ? "completed" : JSON.stringify(c.records));
    };
    let building = true;
    let during = 0;
    const builds = (async () => {
      for (let round = 0; round < 2; round++) await build();
      building = false;
    })();
    let i = 0;
    while (building) {
      await Promise.all([0, 1, 2].map(() => oneStream(i++)));
      if (building) during += 3;
    }
    await builds;
    await Promise.all([0, 1, 2].map(() => oneStream(i++)));

    assert.deepEqual(statuses.filter((s) => s !== "completed"), [], "every stream completed");
    assert.ok(during >= 6, `streams ran while the build replaced dist/ (${during})`);
    assert.doesNotMatch(server.output, /FUNCTION_LOAD_FAILED|went away/);
    assertRan("the server is still up", await run(process.execPath, ["-e", `fetch("http://127.0.0.1:${port}/healthz").then(r => process.exit(r.ok ? 0 : 1))`]));
  });
});
