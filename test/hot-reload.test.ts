import { strict as assert } from "node:assert";
import { rename, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { scrape } from "./helpers/metrics-text.js";
import { eventually, startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";
import type { FunctionStatus, ServerStatus } from "../src/server/status.js";

const versioned = (v: number): string => `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  async *handler(events) {
    for await (const e of events) yield { v: ${v}, e };
  },
});`;

const kDeployMs = 15_000;

async function status(t: TestServer): Promise<ServerStatus> {
  return (await (await fetch(`${t.url}/v1/status`)).json()) as ServerStatus;
}

async function fnStatus(t: TestServer, name: string): Promise<FunctionStatus | undefined> {
  return (await status(t)).functions.find((f) => f.name === name);
}

/** Waits until `name`'s current version is something other than `old`; returns it. */
async function nextVersion(t: TestServer, name: string, old: string | undefined): Promise<string> {
  const version = await eventually(async () => {
    const v = (await fnStatus(t, name))?.version;
    return v && v !== old ? v : undefined;
  }, kDeployMs, `a new version of ${name}`);
  return version!;
}

async function openStream(t: TestServer, fn: string, id?: string): Promise<{ c: StreamClient; version: string }> {
  const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/${fn}/streams${id ? `/${id}` : ""}`);
  const open = await c.waitFor((r) => r.type === "open");
  return { c, version: String(open.version) };
}

function outputFor(c: StreamClient, e: string) {
  return c.waitFor((r) => r.type === "output" && (r.data as { e: string }).e === e);
}

describe("live function versions", () => {
  let t: TestServer;
  let echo: string;
  before(async () => {
    t = await startTestServer({ "echo.ts": versioned(1) }, { watch: true });
    echo = join(t.dir, "echo.ts");
  });
  after(() => t.close());

  it("sends new streams to an edited version while running ones finish on theirs, then stops the old one", async () => {
    assert.equal((await status(t)).watching, true);
    const a = await openStream(t, "echo", "a");
    a.c.event("a1");
    assert.deepEqual((await outputFor(a.c, "a1")).data, { v: 1, e: "a1" });
    const v1 = a.version;
    const v1Instances = (await fnStatus(t, "echo"))!.versions[0]!.instances.map((i) => i.id);
    assert.equal(v1Instances.length, 1);

    await writeFile(echo, versioned(2));
    const v2 = await nextVersion(t, "echo", v1);
    assert.ok(t.logs.some((r) => r.msg === "deployed" && r.fn === "echo" && r.version === v2 && r.previous === v1), t.logText());

    const during = (await fnStatus(t, "echo"))!;
    assert.deepEqual(
      during.versions.map((v) => [v.version, v.role, v.liveStreams]),
      [
        [v2, "current", 0],
        [v1, "retiring", 1],
      ],
    );

    const b = await openStream(t, "echo", "b");
    assert.equal(b.version, v2);
    b.c.event("b1");
    assert.deepEqual((await outputFor(b.c, "b1")).data, { v: 2, e: "b1" });

    // a keeps its version to the end.
    a.c.event("a2");
    assert.deepEqual((await outputFor(a.c, "a2")).data, { v: 1, e: "a2" });
    a.c.end();
    const endA = await a.c.waitEnd();
    assert.equal(endA.status, "completed");
    assert.deepEqual(a.c.outputs(), [
      { v: 1, e: "a1" },
      { v: 1, e: "a2" },
    ]);

    // v1 drains: its instance stops and only v2 is left.
    const drained = (await eventually(async () => {
      const f = await fnStatus(t, "echo");
      return f && f.versions.length === 1 ? f : undefined;
    }, kDeployMs, "v1 to drain"))!;
    assert.equal(drained.versions[0]!.version, v2);
    assert.equal(drained.versions[0]!.role, "current");
    for (const i of drained.versions[0]!.instances) assert.ok(!v1Instances.includes(i.id));
    const m = await scrape(t.url);
    assert.deepEqual(
      m.series("streamfn_function_version_info").filter((s) => s.labels.function === "echo").map((s) => s.labels.version),
      [v2],
    );

    b.c.event("b2");
    b.c.end();
    assert.equal((await b.c.waitEnd()).status, "completed");
    assert.deepEqual(b.c.outputs(), [
      { v: 2, e: "b1" },
      { v: 2, e: "b2" },
    ]);
  });

  it("keeps the serving version when an edit does not bundle or does not load", async () => {
    const serving = (await fnStatus(t, "echo"))!.version!;
    const failures = () => t.logs.filter((r) => r.msg === "deploy failed" && r.code === "FUNCTION_LOAD_FAILED");
    const before = failures().length;

    await writeFile(echo, "export default defineStreamFunction({ handler(events) {");
    await eventually(() => failures().length === before + 1, kDeployMs, "the bundling failure to be logged");
    assert.equal(failures().at(-1)!.fn, "echo");
    assert.equal(failures().at(-1)!.serving, serving);
    assert.match(String(failures().at(-1)!.file), /echo\.ts$/);

    await writeFile(echo, `throw new Error("broken at load"); export default 1;`);
    await eventually(() => failures().length === before + 2, kDeployMs, "the load failure to be logged");
    assert.match(String(failures().at(-1)!.message), /broken at load/);
    assert.equal(failures().at(-1)!.serving, serving);

    const s = await openStream(t, "echo");
    assert.equal(s.version, serving);
    s.c.event("x");
    assert.deepEqual((await outputFor(s.c, "x")).data, { v: 2, e: "x" });
    s.c.end();
    await s.c.waitEnd();

    // A good edit after the broken ones deploys as usual.
    await writeFile(echo, versioned(3));
    const v3 = await nextVersion(t, "echo", serving);
    assert.ok(t.logs.some((r) => r.msg === "deployed" && r.fn === "echo" && r.version === v3 && r.previous === serving));
  });

  it("serves a file added to the directory, also one moved into place", async () => {
    await writeFile(join(t.dir, "added.ts.tmp"), versioned(7));
    await rename(join(t.dir, "added.ts.tmp"), join(t.dir, "added.ts"));
    const version = await nextVersion(t, "added", undefined);
    assert.ok(t.logs.some((r) => r.msg === "deployed" && r.fn === "added" && r.version === version && r.previous === undefined));
    const s = await openStream(t, "added");
    s.c.event("y");
    assert.deepEqual((await outputFor(s.c, "y")).data, { v: 7, e: "y" });
    s.c.end();
    await s.c.waitEnd();
  });

  it("removes a function whose file is deleted once its running streams finish", async () => {
    const running = await openStream(t, "echo", "last");
    running.c.event("r1");
    await outputFor(running.c, "r1");

    await unlink(echo);
    await eventually(async () => {
      try {
        (await openStream(t, "echo")).c.close();
        return false;
      } catch (err) {
        const e = err as { status: number; body: { error: { code: string } } };
        assert.equal(e.status, 404);
        assert.equal(e.body.error.code, "FUNCTION_NOT_FOUND");
        return true;
      }
    }, kDeployMs, "new streams of a deleted function to be refused");
    assert.ok(t.logs.some((r) => r.msg.startsWith("removed") && r.fn === "echo" && r.version === running.version));

    // Shown as draining (no current version) while its stream runs.
    const draining = (await fnStatus(t, "echo"))!;
    assert.equal(draining.version, null);
    assert.deepEqual(draining.versions.map((v) => [v.version, v.role, v.liveStreams]), [[running.version, "retiring", 1]]);

    running.c.event("r2");
    await outputFor(running.c, "r2");
    running.c.end();
    assert.equal((await running.c.waitEnd()).status, "completed");
    await eventually(async () => (await fnStatus(t, "echo")) === undefined, kDeployMs, "echo to be gone from status");
  });
});
