import { strict as assert } from "node:assert";
import { mkdir, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { eventually, startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";
import { describeServerRecord } from "../src/server/server-log.js";

/** The server's log so far, each record as the sentence `streamfn dev` prints for it. */
const lines = (t: TestServer): string[] => t.logs.map(describeServerRecord);

const kDeployMs = 15_000;

const motion = `
import { defineStreamFunction } from "streamfn";
import { score } from "./lib/score.js";
import { label } from "./util.js";
export default defineStreamFunction({
  async *handler(events) {
    for await (const e of events) yield { score: score(e as number), label: label() };
  },
});`;

const scoreV = (k: number): string => `export function score(x: number): number { return x * ${k}; }\n`;
const util = (s: string): string => `export function label(): string { return ${JSON.stringify(s)}; }\n`;

async function firstOutput(t: TestServer, fn: string, data: unknown): Promise<{ version: string; output: unknown }> {
  const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/${fn}/streams`);
  try {
    const open = await c.waitFor((r) => r.type === "open");
    c.event(data);
    const out = await c.waitFor((r) => r.type === "output");
    c.end();
    await c.waitEnd();
    return { version: String(open.version), output: out.data };
  } finally {
    c.ws.close();
  }
}

function version(t: TestServer, name: string): string | undefined {
  return t.server.registry.current(name)?.version;
}

describe("import watching", () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ "motion.ts": motion, "util.ts": util("a"), "stray.ts": "export const x = 1;\n", "lib/score.ts": scoreV(2) }, {
      watch: true,
    });
  });
  after(() => t.close());

  it("serves the function, not its helper file, and notes a stray file once without failing it", async () => {
    assert.deepEqual((await firstOutput(t, "motion", 3)).output, { score: 6, label: "a" });
    assert.equal(version(t, "util"), undefined);
    assert.ok(!lines(t).some((l) => l.includes("FUNCTION_LOAD_FAILED") || l.includes("util.ts")), lines(t).join("\n"));
    assert.deepEqual(
      lines(t).filter((l) => l.includes("stray.ts")),
      ["streamfn: stray.ts is not a stream function (no default export made with defineStreamFunction); not served"],
    );
    assert.ok(t.server.registry.watchedDirs.includes(join(t.dir, "lib")), t.server.registry.watchedDirs.join(","));
  });

  it("redeploys a function when a file it imports from a subdirectory changes", async () => {
    const v1 = version(t, "motion");
    await writeFile(join(t.dir, "lib", "score.ts"), scoreV(10));
    const v2 = await eventually(() => (version(t, "motion") !== v1 ? version(t, "motion") : undefined), kDeployMs, "motion to redeploy");
    assert.ok(lines(t).includes(`streamfn: deployed motion@${v2} (replaces ${v1})`), lines(t).join("\n"));
    const got = await firstOutput(t, "motion", 3);
    assert.equal(got.version, v2);
    assert.deepEqual(got.output, { score: 30, label: "a" });
  });

  it("redeploys when a top-level helper changes, and deploys nothing when the bundle is the same", async () => {
    const v2 = version(t, "motion");
    await writeFile(join(t.dir, "util.ts"), util("b"));
    const v3 = await eventually(() => (version(t, "motion") !== v2 ? version(t, "motion") : undefined), kDeployMs, "motion to redeploy");
    assert.deepEqual((await firstOutput(t, "motion", 1)).output, { score: 10, label: "b" });
    assert.equal(version(t, "util"), undefined);

    const deploys = lines(t).filter((l) => l.startsWith("streamfn: deployed motion@")).length;
    // Rewriting a file unchanged gives the same bundle: nothing is deployed for it. It is
    // handled before the helper edit that follows (same settle time, one queue per function).
    await writeFile(join(t.dir, "lib", "score.ts"), scoreV(10));
    await writeFile(join(t.dir, "util.ts"), util("c"));
    await eventually(() => version(t, "motion") !== v3, kDeployMs, "motion to redeploy");
    assert.deepEqual((await firstOutput(t, "motion", 1)).output, { score: 10, label: "c" });
    assert.equal(lines(t).filter((l) => l.startsWith("streamfn: deployed motion@")).length, deploys + 1, lines(t).join("\n"));
  });

  it("keeps serving when an imported file goes, and redeploys when it comes back", async () => {
    const serving = version(t, "motion");
    const failures = (): string[] => lines(t).filter((l) => l.includes("FUNCTION_LOAD_FAILED") && l.includes("motion"));
    await unlink(join(t.dir, "lib", "score.ts"));
    await eventually(() => failures().length > 0, kDeployMs, "the missing import to be reported");
    assert.match(failures().at(-1)!, new RegExp(`still serving motion@${serving}$`));
    assert.deepEqual((await firstOutput(t, "motion", 1)).output, { score: 10, label: "c" });

    await writeFile(join(t.dir, "lib", "score.ts"), scoreV(5));
    await eventually(() => version(t, "motion") !== serving, kDeployMs, "motion to redeploy");
    assert.deepEqual((await firstOutput(t, "motion", 1)).output, { score: 5, label: "c" });
  });

  it("follows a new import added by an edit, and ignores the bundle cache and node_modules", async () => {
    await mkdir(join(t.dir, "node_modules", "dep"), { recursive: true });
    await mkdir(join(t.dir, "more"), { recursive: true });
    await writeFile(join(t.dir, "more", "bonus.ts"), "export const bonus = 1;\n");
    await writeFile(
      join(t.dir, "plain.ts"),
      `import { defineStreamFunction } from "streamfn";
import { bonus } from "./more/bonus.js";
export default defineStreamFunction({ async *handler(events) { for await (const _ of events) yield bonus; } });`,
    );
    await eventually(() => version(t, "plain"), kDeployMs, "plain to deploy");
    assert.equal((await firstOutput(t, "plain", 0)).output, 1);
    const watched = t.server.registry.watchedDirs;
    assert.ok(watched.includes(join(t.dir, "more")), watched.join(","));
    assert.ok(!watched.some((d) => d.includes("node_modules") || d.includes(".streamfn")), watched.join(","));
    const v = version(t, "plain");
    await writeFile(join(t.dir, "more", "bonus.ts"), "export const bonus = 2;\n");
    await eventually(() => version(t, "plain") !== v, kDeployMs, "plain to redeploy");
    assert.equal((await firstOutput(t, "plain", 0)).output, 2);
  });

  it("follows a file's role as edits change it", async () => {
    const fn = (v: number): string => `import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({ async *handler(events) { for await (const _ of events) yield ${v}; } });`;
    await writeFile(join(t.dir, "solo.ts"), fn(1));
    const solo = await eventually(() => version(t, "solo"), kDeployMs, "solo to deploy");

    // Losing its default export: reported, and the version before keeps serving.
    await writeFile(join(t.dir, "solo.ts"), "export const nothing = 0;\n");
    const invalid = await eventually(() => lines(t).find((l) => l.startsWith("streamfn: INVALID_FUNCTION: solo")), kDeployMs, "the lost export to be reported");
    assert.equal(invalid, `streamfn: INVALID_FUNCTION: solo: solo.ts is not a stream function (no default export made with defineStreamFunction); still serving solo@${solo}`);
    assert.equal((await firstOutput(t, "solo", 0)).output, 1);

    // Imported by another function: a helper from then on, no longer served.
    await writeFile(join(t.dir, "solo.ts"), `export const n = 5;\n${fn(2)}`);
    await eventually(() => version(t, "solo") !== solo, kDeployMs, "solo to redeploy");
    await writeFile(
      join(t.dir, "user.ts"),
      `import { defineStreamFunction } from "streamfn";
import { n } from "./solo.js";
export default defineStreamFunction({ async *handler(events) { for await (const _ of events) yield n; } });`,
    );
    await eventually(() => version(t, "user"), kDeployMs, "user to deploy");
    await eventually(() => version(t, "solo") === undefined, kDeployMs, "solo to stop being served");
    assert.ok(lines(t).includes("streamfn: solo.ts is imported by user.ts: a helper, not served"), lines(t).join("\n"));
    assert.equal((await firstOutput(t, "user", 0)).output, 5);

    // No longer imported: judged again, and served as the function it is.
    await writeFile(
      join(t.dir, "user.ts"),
      `import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({ async *handler(events) { for await (const _ of events) yield 6; } });`,
    );
    await eventually(() => version(t, "solo"), kDeployMs, "solo to be served again");
    assert.equal((await firstOutput(t, "solo", 0)).output, 2);
  });
});

describe("an import that does not exist yet", () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ "motion.ts": motion, "util.ts": util("z") }, { watch: true });
  });
  after(() => t.close());

  it("is reported, then deployed once the file and its folder appear", async () => {
    assert.equal(version(t, "motion"), undefined);
    assert.ok(lines(t).some((l) => l.startsWith("streamfn: FUNCTION_LOAD_FAILED: motion: bundling") && l.includes("./lib/score.js")), lines(t).join("\n"));
    await mkdir(join(t.dir, "lib"));
    // The new folder is where the missing file will appear: it is watched before the file exists.
    await eventually(() => t.server.registry.watchedDirs.includes(join(t.dir, "lib")), kDeployMs, "lib/ to be watched");
    await writeFile(join(t.dir, "lib", "score.ts"), scoreV(4));
    const v = await eventually(() => version(t, "motion"), kDeployMs, "motion to deploy");
    assert.ok(lines(t).includes(`streamfn: deployed motion@${v} (new function)`), lines(t).join("\n"));
    assert.deepEqual((await firstOutput(t, "motion", 2)).output, { score: 8, label: "z" });
  });
});
