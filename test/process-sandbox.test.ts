import { strict as assert } from "node:assert";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StreamfnServer } from "../src/server/server.js";
import { createServerLogger } from "../src/server/logger.js";
import { after, before, describe, it } from "node:test";
import { startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";

const isolated = `
import { defineStreamFunction } from "streamfn";
import { writeFileSync } from "node:fs";
export default defineStreamFunction({
  sandbox: "process",
  concurrency: 4,
  unresponsiveMs: 300,
  async *handler(events) {
    for await (const e of events) {
      if (e instanceof Uint8Array) { yield { bytes: Array.from(e) }; continue; }
      if (e === "pid") yield { pid: process.pid };
      else if (e === "write") writeFileSync("/tmp/streamfn-sandbox-escape.txt", "x");
      else if (e === "spin") { for (;;) {} }
      else yield { echo: e };
    }
  },
});`;

describe("process sandbox", () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ "isolated.ts": isolated });
  });
  after(() => t.close());

  it("runs the handler in a separate process, with JSON and binary events", async () => {
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/isolated/streams`);
    c.event("pid");
    c.event({ a: 1 });
    c.binary(new Uint8Array([1, 2, 250]));
    c.end();
    const end = await c.waitEnd(10_000);
    assert.equal(end.status, "completed");
    const [pid, echo, bytes] = c.outputs() as [{ pid: number }, unknown, unknown];
    assert.equal(typeof pid.pid, "number");
    assert.notEqual(pid.pid, process.pid, "not the server's process");
    assert.deepEqual(echo, { echo: { a: 1 } });
    assert.deepEqual(bytes, { bytes: [1, 2, 250] });
  });

  it("denies file writes to the handler; the instance goes on serving", async () => {
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/isolated/streams`);
    c.event("write");
    const end = await c.waitEnd(10_000);
    assert.equal(end.status, "failed");
    assert.equal((end.error as { code: string }).code, "SANDBOX_ACCESS_DENIED");
    assert.match((end.error as { message: string }).message, /denied FileSystemWrite of \/tmp\/streamfn-sandbox-escape\.txt/);
    const d = await StreamClient.connect(`${t.wsUrl}/v1/functions/isolated/streams`);
    d.event("after");
    d.end();
    assert.equal((await d.waitEnd(10_000)).status, "completed");
    assert.deepEqual(d.outputs(), [{ echo: "after" }]);
  });

  it("kills a process stuck in a CPU loop and fails its streams instead of hanging", async () => {
    const stuck = await StreamClient.connect(`${t.wsUrl}/v1/functions/isolated/streams/stuck`);
    const neighbour = await StreamClient.connect(`${t.wsUrl}/v1/functions/isolated/streams/neighbour`);
    neighbour.event("hi");
    await neighbour.waitFor((r) => r.type === "output", 10_000);
    stuck.event("spin");
    const [a, b] = await Promise.all([stuck.waitEnd(15_000), neighbour.waitEnd(15_000)]);
    for (const end of [a, b]) {
      assert.equal(end.status, "failed");
      assert.equal((end.error as { code: string }).code, "INSTANCE_UNRESPONSIVE");
    }
    const fresh = await StreamClient.connect(`${t.wsUrl}/v1/functions/isolated/streams`);
    fresh.event("again");
    fresh.end();
    assert.equal((await fresh.waitEnd(10_000)).status, "completed");
  });
});

describe("process sandbox: packages hoisted above the functions directory, and what it may not read", () => {
  let root: string;
  let server: StreamfnServer;
  let wsUrl: string;
  const logs: { msg: string; message?: string }[] = [];
  before(async () => {
    // A project as npm lays it out: packages in the root's node_modules, functions in a subfolder.
    root = await mkdtemp(join(tmpdir(), "streamfn-hoisted-"));
    const pkg = join(root, "node_modules", "shout");
    await mkdir(pkg, { recursive: true });
    await writeFile(join(pkg, "package.json"), JSON.stringify({ name: "shout", version: "1.0.0", type: "module", exports: "./index.js" }));
    await writeFile(join(pkg, "index.js"), "export function shout(s) { return String(s).toUpperCase() + '!'; }\n");
    await writeFile(join(root, "secret.txt"), "not for functions");
    const functionsDir = join(root, "functions");
    await mkdir(functionsDir);
    await writeFile(
      join(functionsDir, "loud.ts"),
      `import { defineStreamFunction } from "streamfn";
import { readFileSync } from "node:fs";
import { shout } from "shout";
export default defineStreamFunction({
  sandbox: "process",
  async *handler(events) {
    for await (const e of events) {
      if (e === "secret") yield readFileSync(${JSON.stringify(join(root, "secret.txt"))}, "utf8");
      else yield shout(e);
    }
  },
});
`,
    );
    // Reads outside what it may at load time: it cannot be deployed, and the error says why.
    await writeFile(
      join(functionsDir, "nosy.ts"),
      `import { defineStreamFunction } from "streamfn";
import { readFileSync } from "node:fs";
readFileSync(${JSON.stringify(join(root, "secret.txt"))});
export default defineStreamFunction({ sandbox: "process", async *handler(events) { for await (const e of events) yield e; } });
`,
    );
    server = await StreamfnServer.start({
      functionsDir,
      port: 0,
      host: "127.0.0.1",
      graceMs: 0,
      defaults: { sandbox: "process" },
      logger: createServerLogger({ destination: { write: (line: string) => void logs.push(JSON.parse(line) as { msg: string }) } }),
    });
    wsUrl = server.url.replace(/^http/, "ws");
  });
  after(async () => {
    await server.close();
    await rm(root, { recursive: true, force: true });
  });

  it("imports a package from the project root's node_modules", async () => {
    const c = await StreamClient.connect(`${wsUrl}/v1/functions/loud/streams`);
    c.event("hi");
    c.end();
    const end = await c.waitEnd(10_000);
    assert.equal(end.status, "completed", JSON.stringify(end));
    assert.deepEqual(c.outputs(), ["HI!"]);
  });

  it("fails a handler that reads a file outside the allowed paths with SANDBOX_ACCESS_DENIED naming the path", async () => {
    const c = await StreamClient.connect(`${wsUrl}/v1/functions/loud/streams`);
    c.event("secret");
    const end = await c.waitEnd(10_000);
    assert.equal(end.status, "failed");
    const error = end.error as { code: string; message: string };
    assert.equal(error.code, "SANDBOX_ACCESS_DENIED");
    assert.ok(error.message.includes(`denied FileSystemRead of ${join(root, "secret.txt")}`), error.message);
  });

  it("refuses to deploy a function that reads outside the allowed paths at load, naming the path", () => {
    const failed = logs.find((r) => r.msg === "deploy failed" && (r as { fn?: string }).fn === "nosy");
    assert.ok(failed, JSON.stringify(logs));
    assert.ok(String(failed.message).includes(`denied FileSystemRead of ${join(root, "secret.txt")}`), String(failed.message));
  });
});
