// The inline tier (sandbox: "inline"): the handler runs on the server's own thread. What it
// keeps of the contract runs in every contract-* suite (forEachSandbox); this file checks what
// is particular to it: where the code runs, how a failed load is retried, how it is stopped,
// and that an operator can refuse it.
import { strict as assert } from "node:assert";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";
import { eventually } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";
import { serveBinary } from "./helpers/processes.js";
import type { Background } from "./helpers/processes.js";

const whereAmI = (sandbox: string): string => `
import { defineStreamFunction } from "streamfn";
import { isMainThread } from "node:worker_threads";
export default defineStreamFunction({
  sandbox: "${sandbox}",
  async *handler(events) {
    for await (const e of events) yield { e, mainThread: isMainThread, pid: process.pid };
  },
});`;

// Fails to load while the test sets globalThis.__streamfnFragileFail: only an inline load sees
// the test's globals (its load check ran in a thread), so the first inline instance can fail.
const fragile = `
import { defineStreamFunction } from "streamfn";
if (globalThis.__streamfnFragileFail === true) throw new Error("cannot load right now");
export default defineStreamFunction({
  sandbox: "inline",
  keepAliveMs: 0,
  async *handler(events) {
    for await (const e of events) yield e;
  },
});
`;

// Waits on an abort of ctx.signal (the instance stopping under it) and records that it saw it.
const listener = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  sandbox: "inline",
  keepAliveMs: 0,
  async *handler(events, ctx) {
    ctx.signal.addEventListener("abort", () => { globalThis.__streamfnAborted = (globalThis.__streamfnAborted ?? 0) + 1; });
    for await (const e of events) yield e;
  },
});`;

async function roundTrip(t: TestServer, fn: string, event: unknown): Promise<{ outputs: unknown[]; end: Record<string, unknown> }> {
  const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/${fn}/streams`);
  c.event(event);
  c.end();
  const end = await c.waitEnd(10_000);
  return { outputs: c.outputs(), end };
}

describe("the inline tier", () => {
  let t: TestServer;
  const g = globalThis as Record<string, unknown>;
  before(async () => {
    t = await startTestServer({
      "inline.ts": whereAmI("inline"),
      "threaded.ts": whereAmI("thread"),
      "fragile.ts": fragile,
      "listener.ts": listener,
    });
  });
  after(async () => {
    await t.close();
    delete g.__streamfnFragileFail;
    delete g.__streamfnAborted;
  });

  it("runs the handler on the server's main thread; the thread tier does not", async () => {
    const inline = await roundTrip(t, "inline", 1);
    assert.equal(inline.end.status, "completed", JSON.stringify(inline.end));
    assert.deepEqual(inline.outputs, [{ e: 1, mainThread: true, pid: process.pid }]);
    const threaded = await roundTrip(t, "threaded", 2);
    assert.deepEqual(threaded.outputs, [{ e: 2, mainThread: false, pid: process.pid }]);
  });

  it("reports the tier in the function's options", async () => {
    const res = await fetch(`${t.url}/v1/status`);
    const body = (await res.json()) as { functions: { name: string; options?: { sandbox?: string } }[] };
    const fn = body.functions.find((f) => f.name === "inline");
    assert.equal(fn?.options?.sandbox, "inline", JSON.stringify(fn));
  });

  it("a load that fails gives FUNCTION_LOAD_FAILED, and the next stream loads the module afresh", async () => {
    g.__streamfnFragileFail = true;
    const failed = await roundTrip(t, "fragile", "a");
    assert.equal(failed.end.status, "failed", JSON.stringify(failed.end));
    assert.equal((failed.end.error as { code: string }).code, "FUNCTION_LOAD_FAILED");
    assert.match((failed.end.error as { message: string }).message, /cannot load right now/);
    delete g.__streamfnFragileFail;
    await eventually(async () => (await instancesOf(t, "fragile")) === 0, 5_000, "the failed instance to go");
    // The module cache keeps a failed evaluation; the retry must not get that error back.
    const ok = await roundTrip(t, "fragile", "b");
    assert.equal(ok.end.status, "completed", JSON.stringify(ok.end));
    assert.deepEqual(ok.outputs, ["b"]);
  });

  it("stopping an inline instance stops the handlers still running in it (ctx.signal fires)", async () => {
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/listener/streams/stopped-1`);
    c.event("x");
    await c.waitFor((r) => r.type === "output", 5_000);
    const before = (g.__streamfnAborted as number | undefined) ?? 0;
    // The server stops its instances on close; here the stream is cancelled instead, which
    // ends the stream: its handler must see the abort and leave, in this very process.
    const res = await fetch(`${t.url}/v1/functions/listener/streams/stopped-1`, { method: "DELETE" });
    assert.ok(res.status < 300, `cancel answered ${res.status}`);
    const end = await c.waitEnd(10_000);
    assert.equal(end.status, "failed");
    await eventually(async () => ((g.__streamfnAborted as number | undefined) ?? 0) > before, 5_000, "the handler's abort listener");
  });
});

describe("a server started with --no-inline (allowInline: false)", () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ "inline.ts": whereAmI("inline"), "threaded.ts": whereAmI("thread") }, { allowInline: false });
  });
  after(() => t.close());

  it("refuses a function that asks for the inline tier, saying why, and serves the others", async () => {
    const refused = t.logs.find((r) => r.msg === "deploy failed" && r.fn === "inline");
    assert.ok(refused, t.logText());
    assert.equal(refused.code, "SANDBOX_NOT_ALLOWED");
    assert.match(String(refused.message), /--no-inline/);
    const res = await fetch(`${t.url}/v1/functions/inline/streams/x/events`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ data: 1 }),
    });
    assert.equal(res.status, 404, "the refused function is not served");
    const threaded = await roundTrip(t, "threaded", 3);
    assert.deepEqual(threaded.outputs, [{ e: 3, mainThread: false, pid: process.pid }]);
  });
});

async function instancesOf(t: TestServer, fn: string): Promise<number> {
  const body = (await (await fetch(`${t.url}/v1/status`)).json()) as {
    functions: { name: string; versions?: { instances: unknown[] }[] }[];
  };
  const f = body.functions.find((x) => x.name === fn);
  return (f?.versions ?? []).reduce((n, v) => n + v.instances.length, 0);
}

describe("the inline tier in the real binary", () => {
  let dir: string;
  let proc: Background;
  let url: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "streamfn-inline-"));
    // Leaves a rejected promise nobody awaits: Node's default would end the server's process.
    await writeFile(join(dir, "careless.ts"), `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  sandbox: "inline",
  async *handler(events) {
    for await (const e of events) {
      void Promise.reject(new Error("forgotten " + e));
      yield e;
    }
  },
});`);
    ({ proc, url } = await serveBinary(dir));
  });
  after(async () => {
    await proc.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("an unhandled rejection in inline code is logged and the server goes on, as in the other tiers", async () => {
    for (const id of ["one", "two"]) {
      const c = await StreamClient.connect(`${url.replace(/^http/, "ws")}/v1/functions/careless/streams/${id}`);
      c.event(id);
      c.end();
      const end = await c.waitEnd(10_000);
      assert.equal(end.status, "completed", JSON.stringify(end));
      assert.deepEqual(c.outputs(), [id]);
    }
    await proc.waitFor(/unhandled promise rejection \(inline function code\?\)[\s\S]*forgotten one/, 10_000);
  });
});
