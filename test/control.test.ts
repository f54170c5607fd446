// The control API over a real server: upload, inspect, retire functions; list and cancel streams.
import { strict as assert } from "node:assert";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { isLoopbackHost } from "../src/control/access.js";
import { buildFunction } from "../src/registry/bundler.js";
import { silentLogger } from "../src/server/logger.js";
import { StreamfnServer } from "../src/server/server.js";
import type { FunctionStatus } from "../src/server/status.js";
import { fnSource } from "./helpers/contract-util.js";
import { call } from "./helpers/http-client.js";
import { eventually, startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";

const versioned = (v: string): string =>
  fnSource(`{
    async *handler(events) {
      for await (const e of events) yield { v: ${JSON.stringify(v)}, e };
    },
  }`);

const kTs = { "content-type": "application/typescript" };
const kJs = { "content-type": "application/javascript" };

function put(t: { url: string }, name: string, source: string, headers: Record<string, string> = kTs, query = "") {
  return call(`${t.url}/v1/functions/${name}${query}`, { method: "PUT", headers, body: source });
}

async function openStream(url: string, fn: string, id?: string): Promise<{ c: StreamClient; version: string }> {
  const c = await StreamClient.connect(`${url.replace(/^http/, "ws")}/v1/functions/${fn}/streams${id ? `/${id}` : ""}`);
  const open = await c.waitFor((r) => r.type === "open");
  return { c, version: String(open.version) };
}

/** Sends one event and returns the output it produced. */
async function roundTrip(c: StreamClient, e: string): Promise<unknown> {
  c.event(e);
  return (await c.waitFor((r) => r.type === "output" && (r.data as { e?: string }).e === e, 10_000)).data;
}

describe("uploading functions (PUT /v1/functions/:name)", () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ "echo.ts": versioned("file") });
  });
  after(() => t.close());

  it("deploys TypeScript source as a new function (201), and the same upload again changes nothing (200)", async () => {
    const first = await put(t, "up", versioned("ts"));
    assert.equal(first.status, 201, JSON.stringify(first.body));
    assert.equal(first.body.name, "up");
    assert.equal(first.body.previous, null);
    assert.match(String(first.body.version), /^[0-9a-f]{12}$/);

    const s = await openStream(t.url, "up");
    assert.equal(s.version, first.body.version);
    assert.deepEqual(await roundTrip(s.c, "a"), { v: "ts", e: "a" });
    s.c.end();
    assert.equal((await s.c.waitEnd()).status, "completed");

    const again = await put(t, "up", versioned("ts"));
    assert.equal(again.status, 200);
    assert.deepEqual(again.body, { name: "up", version: first.body.version, previous: first.body.version, unchanged: true });
    assert.deepEqual(await readdir(join(t.dir, ".streamfn", "deployed")), ["up.ts"]);
  });

  it("deploys a JavaScript bundle (as `streamfn deploy` makes it) as the next version, and ?source=ts for any content type", async () => {
    const src = join(t.dir, "..", `streamfn-bundle-src-${process.pid}.ts`);
    await writeFile(src, versioned("bundle"));
    let bundle: Uint8Array;
    try {
      bundle = (await buildFunction(src, "up", { apiExternal: true })).code;
    } finally {
      await rm(src, { force: true });
    }
    const before = (await call(`${t.url}/v1/functions/up`)).body.version;
    const res = await call(`${t.url}/v1/functions/up`, { method: "PUT", headers: kJs, body: bundle });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.previous, before);
    assert.notEqual(res.body.version, before);
    assert.equal(res.body.unchanged, false);
    // The stored copy follows the kind of the upload: only the latest is kept.
    assert.deepEqual(await readdir(join(t.dir, ".streamfn", "deployed")), ["up.mjs"]);

    const s = await openStream(t.url, "up");
    assert.equal(s.version, res.body.version);
    assert.deepEqual(await roundTrip(s.c, "b"), { v: "bundle", e: "b" });
    s.c.end();
    await s.c.waitEnd();

    const forced = await put(t, "up", versioned("forced"), { "content-type": "text/plain" }, "?source=ts");
    assert.equal(forced.status, 200, JSON.stringify(forced.body));
    const f = await openStream(t.url, "up");
    assert.deepEqual(await roundTrip(f.c, "c"), { v: "forced", e: "c" });
    f.c.end();
    await f.c.waitEnd();
  });

  it("resolves the npm packages an upload imports from the functions directory upwards", async () => {
    const pkg = join(t.dir, "node_modules", "greeter");
    await mkdir(pkg, { recursive: true });
    await writeFile(join(pkg, "package.json"), JSON.stringify({ name: "greeter", type: "module", main: "index.js" }));
    await writeFile(join(pkg, "index.js"), `export const greet = (x) => "hello " + x;`);
    const source = fnSource(
      `{ async *handler(events) { for await (const e of events) yield { e, said: greet(e) }; } }`,
      `import { greet } from "greeter";`,
    );
    const res = await put(t, "greets", source);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const s = await openStream(t.url, "greets");
    assert.deepEqual(await roundTrip(s.c, "you"), { e: "you", said: "hello you" });
    s.c.end();
    await s.c.waitEnd();
  });

  it("lets a stream running on v1 finish on v1 while new streams get v2", async () => {
    const v1 = (await put(t, "roll", versioned("one"))).body.version;
    const a = await openStream(t.url, "roll", "a");
    assert.deepEqual(await roundTrip(a.c, "a1"), { v: "one", e: "a1" });

    const up = await put(t, "roll", versioned("two"));
    assert.equal(up.status, 200);
    assert.equal(up.body.previous, v1);
    const v2 = up.body.version;
    assert.notEqual(v2, v1);
    assert.ok(
      t.logs.some((r) => r.msg === "deployed" && r.fn === "roll" && r.version === v2 && r.previous === v1 && r.source === "upload"),
      t.logText(),
    );

    const detail = (await call(`${t.url}/v1/functions/roll`)).body as unknown as FunctionStatus;
    assert.deepEqual(
      detail.versions.map((v) => [v.version, v.role, v.liveStreams]),
      [
        [v2, "current", 0],
        [v1, "retiring", 1],
      ],
    );
    const b = await openStream(t.url, "roll", "b");
    assert.equal(b.version, v2);
    assert.deepEqual(await roundTrip(b.c, "b1"), { v: "two", e: "b1" });
    assert.deepEqual(await roundTrip(a.c, "a2"), { v: "one", e: "a2" });
    a.c.end();
    b.c.end();
    assert.equal((await a.c.waitEnd()).status, "completed");
    assert.equal((await b.c.waitEnd()).status, "completed");
  });

  it("answers 422 DEPLOY_FAILED with the bundler's message for code that does not build or load; v1 keeps serving", async () => {
    const good = await put(t, "fragile", versioned("good"));
    const v1 = good.body.version;
    const stored = join(t.dir, ".streamfn", "deployed", "fragile.ts");
    const storedBefore = await readFile(stored, "utf8");
    const broken: [string, RegExp][] = [
      ["export default defineStreamFunction({ handler(events) {", /^FUNCTION_LOAD_FAILED: fragile: bundling .*fragile\.ts failed: .*fragile\.ts:\d+:\d+: /],
      [`throw new Error("broken at load"); export default 1;`, /broken at load/],
      [`export default { notAFunction: true };`, /fragile/],
      [fnSource(`{ concurrency: 0, async *handler(events) { for await (const e of events) yield e; } }`), /concurrency/],
    ];
    for (const [source, message] of broken) {
      const res = await put(t, "fragile", source);
      assert.equal(res.status, 422, `${source}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error!.code, "DEPLOY_FAILED");
      assert.match(res.body.error!.message, message);
      assert.match(res.body.error!.message, new RegExp(`still serving fragile@${v1}$`));
    }
    assert.equal(await readFile(stored, "utf8"), storedBefore, "a failed upload leaves the stored copy alone");
    assert.equal((await call(`${t.url}/v1/functions/fragile`)).body.version, v1);
    const s = await openStream(t.url, "fragile");
    assert.equal(s.version, v1);
    assert.deepEqual(await roundTrip(s.c, "x"), { v: "good", e: "x" });
    s.c.end();
    await s.c.waitEnd();

    const fresh = await put(t, "never", "export const x = ;");
    assert.equal(fresh.status, 422);
    assert.match(fresh.body.error!.message, /never is not served$/);
    assert.equal((await call(`${t.url}/v1/functions/never`)).status, 404);
    assert.equal(existsSync(join(t.dir, ".streamfn", "deployed", "never.ts")), false);
  });

  it("refuses bad names (400), other content types (415) and bodies over 16 MiB (413), naming the problem", async () => {
    for (const name of ["-dash", "has.dot", "x".repeat(65), "sp%20ace"]) {
      const res = await put(t, name, versioned("x"));
      assert.equal(res.status, 400, name);
      assert.equal(res.body.error!.code, "INVALID_REQUEST");
      assert.match(res.body.error!.message, /function name .* is not allowed: use 1-64 characters/);
    }
    const plain = await put(t, "typed", versioned("x"), { "content-type": "text/plain" });
    assert.equal(plain.status, 415);
    assert.equal(plain.body.error!.code, "UNSUPPORTED_MEDIA_TYPE");
    assert.match(plain.body.error!.message, /application\/javascript .* application\/typescript/);
    const badSource = await put(t, "typed", versioned("x"), kTs, "?source=py");
    assert.equal(badSource.status, 400);

    const big = await call(`${t.url}/v1/functions/big`, { method: "PUT", headers: kJs, body: "/*" + "x".repeat(16 * 1024 * 1024) + "*/" });
    assert.equal(big.status, 413);
    assert.equal(big.body.error!.code, "FUNCTION_TOO_LARGE");
    const empty = await put(t, "empty", "  ");
    assert.equal(empty.status, 400);
    assert.match(empty.body.error!.message, /empty/);
  });
});

describe("inspecting and retiring functions", () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ "echo.ts": versioned("file") });
  });
  after(() => t.close());

  it("lists every function with version, source, instances and streams; details one; 404 for unknown", async () => {
    await put(t, "up", versioned("up"));
    const live = await openStream(t.url, "up", "held");
    const list = await call(`${t.url}/v1/functions`);
    assert.equal(list.status, 200);
    const fns = list.body.functions as Record<string, unknown>[];
    const echo = fns.find((f) => f.name === "echo")!;
    const up = fns.find((f) => f.name === "up")!;
    assert.equal(echo.source, "file");
    assert.equal(echo.file, join(t.dir, "echo.ts"));
    assert.equal(up.source, "uploaded");
    assert.equal(up.file, join(t.dir, ".streamfn", "deployed", "up.ts"));
    assert.equal(up.liveStreams, 1);
    assert.equal(up.queuedStreams, 0);
    assert.deepEqual(up.retiring, []);
    assert.ok((up.instances as number) >= 1);
    assert.equal(typeof up.coldStarts, "number");
    assert.match(String(up.version), /^[0-9a-f]{12}$/);

    const detail = await call(`${t.url}/v1/functions/up`);
    assert.equal(detail.status, 200);
    const d = detail.body as unknown as FunctionStatus;
    assert.equal(d.source, "uploaded");
    assert.equal(d.options!.concurrency > 0, true);
    assert.equal(d.versions[0]!.slots.inUse, 1);
    assert.ok(d.versions[0]!.instances.length >= 1);

    const missing = await call(`${t.url}/v1/functions/nope`);
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error!.code, "FUNCTION_NOT_FOUND");
    live.c.end();
    await live.c.waitEnd();
  });

  it("DELETE retires an uploaded function: running streams finish, new ones are refused, its copy is gone", async () => {
    await put(t, "gone", versioned("gone"));
    const a = await openStream(t.url, "gone", "a");
    const res = await call(`${t.url}/v1/functions/gone`, { method: "DELETE" });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.removedUpload, true);
    assert.equal(res.body.file, null);
    assert.equal(existsSync(join(t.dir, ".streamfn", "deployed", "gone.ts")), false);
    await assert.rejects(StreamClient.connect(`${t.wsUrl}/v1/functions/gone/streams`), (err: { status: number; body: { error: { code: string } } }) => {
      assert.equal(err.status, 404);
      assert.equal(err.body.error.code, "FUNCTION_NOT_FOUND");
      return true;
    });
    assert.deepEqual(await roundTrip(a.c, "last"), { v: "gone", e: "last" });
    a.c.end();
    assert.equal((await a.c.waitEnd()).status, "completed");
    const again = await call(`${t.url}/v1/functions/gone`, { method: "DELETE" });
    assert.equal(again.status, 404);
    assert.equal(again.body.error!.code, "FUNCTION_NOT_FOUND");
  });

  it("DELETE of a function from the directory retires it and says the file comes back at restart", async () => {
    const res = await call(`${t.url}/v1/functions/echo`, { method: "DELETE" });
    assert.equal(res.status, 200);
    assert.equal(res.body.removedUpload, false);
    assert.equal(res.body.file, join(t.dir, "echo.ts"));
    assert.match(String(res.body.note), /served again at the next restart/);
    assert.equal((await call(`${t.url}/v1/functions/echo`)).status, 404);
    assert.ok(existsSync(join(t.dir, "echo.ts")), "the directory's file is the operator's: it stays");
  });
});

describe("uploaded functions across a restart", () => {
  it("are served again, with the same version, by a server started on the same directory", async () => {
    const dir = await mkdtemp(join(tmpdir(), "streamfn-restart-"));
    try {
      await writeFile(join(dir, "echo.ts"), versioned("file"));
      const start = () => StreamfnServer.start({ functionsDir: dir, port: 0, host: "127.0.0.1", graceMs: 0, logger: silentLogger() });
      const first = await start();
      let version: unknown;
      let replaced: unknown;
      try {
        version = (await put(first, "kept", versioned("kept"))).body.version;
        // An upload named like a directory file replaces it, at restart too.
        replaced = (await put(first, "echo", versioned("upload"))).body.version;
        await put(first, "dropped", versioned("dropped"));
        await call(`${first.url}/v1/functions/dropped`, { method: "DELETE" });
      } finally {
        await first.close();
      }
      const second = await start();
      try {
        const list = (await call(`${second.url}/v1/functions`)).body.functions as { name: string; version: string; source: string }[];
        assert.deepEqual(
          list.map((f) => [f.name, f.source]).sort(),
          [
            ["echo", "uploaded"],
            ["kept", "uploaded"],
          ],
        );
        assert.equal(list.find((f) => f.name === "kept")!.version, version);
        assert.equal(list.find((f) => f.name === "echo")!.version, replaced);
        const s = await openStream(second.url, "kept");
        assert.deepEqual(await roundTrip(s.c, "r"), { v: "kept", e: "r" });
        s.c.end();
        await s.c.waitEnd();
        const e = await openStream(second.url, "echo");
        assert.deepEqual(await roundTrip(e.c, "r"), { v: "upload", e: "r" });
        e.c.end();
        await e.c.waitEnd();
      } finally {
        await second.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

const kControlled = fnSource(
  `{
    idleTimeoutMs: 60000,
    async *handler(events, ctx) {
      ctx.signal.addEventListener("abort", () => {
        const r = ctx.signal.reason;
        writeFileSync(join(process.env.TEST_ABORT_MARKERS, ctx.streamId), r.code + ": " + r.message);
      });
      for await (const e of events) {
        if (e === "boom") throw new Error("boom");
        yield e;
      }
    },
  }`,
  `import { writeFileSync } from "node:fs";\nimport { join } from "node:path";`,
);

describe("streams of a function (GET /v1/functions/:fn/streams, DELETE …/streams/:id)", () => {
  let t: TestServer;
  let markers: string;
  before(async () => {
    markers = await mkdtemp(join(tmpdir(), "streamfn-markers-"));
    process.env.TEST_ABORT_MARKERS = markers;
    t = await startTestServer({ "ctl.ts": kControlled });
  });
  after(async () => {
    await t.close();
    await rm(markers, { recursive: true, force: true });
    delete process.env.TEST_ABORT_MARKERS;
  });

  const list = (query = "") => call(`${t.url}/v1/functions/ctl/streams${query}`);

  it("lists live and ended streams newest first, filtered by state, a page at a time", async () => {
    const open: StreamClient[] = [];
    for (const id of ["c1", "c2", "c3"]) {
      const { c } = await openStream(t.url, "ctl", id);
      c.event("x");
      await c.waitFor((r) => r.type === "output");
      c.end();
      assert.equal((await c.waitEnd()).status, "completed");
    }
    const f = await openStream(t.url, "ctl", "f1");
    f.c.event("boom");
    assert.equal((await f.c.waitEnd()).status, "failed");
    for (const id of ["l1", "l2"]) {
      const { c } = await openStream(t.url, "ctl", id);
      c.event("y");
      await c.waitFor((r) => r.type === "output");
      open.push(c);
    }

    const all = await list();
    assert.equal(all.status, 200);
    assert.equal(all.body.live, 2);
    assert.equal(all.body.ended, 4);
    assert.equal(all.body.next, null);
    const streams = all.body.streams as Record<string, unknown>[];
    assert.deepEqual(streams.map((s) => s.id).sort(), ["c1", "c2", "c3", "f1", "l1", "l2"]);
    const opened = streams.map((s) => Date.parse(String(s.openedAt)));
    assert.deepEqual(opened, [...opened].sort((a, b) => b - a), "newest opened first");

    const l1 = streams.find((s) => s.id === "l1")!;
    assert.equal(l1.state, "running");
    assert.equal(l1.events, 1);
    assert.equal(l1.outputs, 1);
    assert.equal(l1.durationMs, null);
    assert.equal(l1.error, null);
    assert.ok((l1.ageMs as number) >= 0);
    const f1 = streams.find((s) => s.id === "f1")!;
    assert.equal(f1.state, "failed");
    assert.equal((f1.error as { code: string }).code, "HANDLER_ERROR");
    assert.equal(f1.reason, "error");
    const c1 = streams.find((s) => s.id === "c1")!;
    assert.equal(c1.state, "completed");
    assert.equal(c1.reason, "end");
    assert.equal(c1.outputs, 1);
    assert.ok((c1.durationMs as number) >= 0);
    assert.match(String(c1.version), /^[0-9a-f]{12}$/);

    const ids = async (q: string) => ((await list(q)).body.streams as { id: string }[]).map((s) => s.id).sort();
    assert.deepEqual(await ids("?state=live"), ["l1", "l2"]);
    assert.deepEqual(await ids("?state=running"), ["l1", "l2"]);
    assert.deepEqual(await ids("?state=ended"), ["c1", "c2", "c3", "f1"]);
    assert.deepEqual(await ids("?state=completed"), ["c1", "c2", "c3"]);
    assert.deepEqual(await ids("?state=failed"), ["f1"]);

    // Pages of 4 then 2 cover every stream once, in the same order, even if one ends between pages.
    const page1 = await list("?limit=4");
    assert.equal((page1.body.streams as unknown[]).length, 4);
    assert.equal(typeof page1.body.next, "string");
    open[0]!.end();
    await open[0]!.waitEnd();
    const page2 = await list(`?limit=4&cursor=${page1.body.next}`);
    assert.equal(page2.body.next, null);
    const paged = [...(page1.body.streams as { id: string }[]), ...(page2.body.streams as { id: string }[])].map((s) => s.id);
    assert.deepEqual(paged, streams.map((s) => s.id));

    for (const q of ["?limit=0", "?limit=1001", "?limit=x", "?state=sleeping", "?cursor=nonsense"]) {
      const res = await list(q);
      assert.equal(res.status, 400, q);
      assert.equal(res.body.error!.code, "INVALID_REQUEST", q);
    }
    assert.equal((await call(`${t.url}/v1/functions/nope/streams`)).status, 404);
    open[1]!.end();
    await open[1]!.waitEnd();
  });

  it("cancels a live stream: it ends failed with STREAM_CANCELLED, its producer gets the end record, ctx.signal fires", async () => {
    const { c } = await openStream(t.url, "ctl", "victim");
    c.event("v");
    await c.waitFor((r) => r.type === "output");
    const res = await call(`${t.url}/v1/functions/ctl/streams/victim?reason=${encodeURIComponent("runaway")}`, { method: "DELETE" });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.status, "failed");
    assert.deepEqual(res.body.error, { code: "STREAM_CANCELLED", message: "cancelled by an operator: runaway" });
    const end = await c.waitEnd();
    assert.equal(end.status, "failed");
    assert.deepEqual(end.error, { code: "STREAM_CANCELLED", message: "cancelled by an operator: runaway" });
    const marker = await eventually(async () => readFile(join(markers, "victim"), "utf8").catch(() => undefined), 10_000, "the abort marker");
    assert.equal(marker, "STREAM_CANCELLED: cancelled by an operator: runaway");

    const listed = ((await list("?state=failed")).body.streams as { id: string; error: { code: string } }[]).find((s) => s.id === "victim");
    assert.equal(listed?.error.code, "STREAM_CANCELLED");
    const twice = await call(`${t.url}/v1/functions/ctl/streams/victim`, { method: "DELETE" });
    assert.equal(twice.status, 409);
    assert.equal(twice.body.error!.code, "STREAM_ENDED");
    const unknown = await call(`${t.url}/v1/functions/ctl/streams/nobody`, { method: "DELETE" });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error!.code, "STREAM_NOT_FOUND");
  });
});

describe("who may change things", () => {
  it("knows loopback addresses", () => {
    for (const h of ["127.0.0.1", "127.0.0.2", "127.255.0.9", "localhost", "LOCALHOST", "::1", "[::1]", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1"]) {
      assert.equal(isLoopbackHost(h), true, h);
    }
    for (const h of ["0.0.0.0", "::", "10.0.0.1", "192.168.1.20", "::ffff:10.0.0.1", "fe80::1", "example.com", "128.0.0.1"]) {
      assert.equal(isLoopbackHost(h), false, h);
    }
  });

  it("refuses changes on a server reachable from the network without a token (403 FORBIDDEN); reads still work", async () => {
    // Bound to loopback, but declared reachable (as behind a proxy): the rule is the same as for 0.0.0.0.
    const t = await startTestServer({ "echo.ts": versioned("file") }, { exposed: true });
    try {
      const { c } = await openStream(t.url, "echo", "s");
      for (const [method, path, body] of [
        ["PUT", "/v1/functions/evil", versioned("x")],
        ["DELETE", "/v1/functions/echo", undefined],
        ["DELETE", "/v1/functions/echo/streams/s", undefined],
      ] as const) {
        const res = await call(`${t.url}${path}`, { method, headers: kTs, ...(body ? { body } : {}) });
        assert.equal(res.status, 403, `${method} ${path}`);
        assert.equal(res.body.error!.code, "FORBIDDEN");
        assert.match(res.body.error!.message, /--token/);
      }
      assert.equal((await call(`${t.url}/v1/functions`)).status, 200);
      assert.equal((await call(`${t.url}/v1/functions/echo/streams`)).status, 200);
      assert.equal(existsSync(join(t.dir, ".streamfn", "deployed")), false);
      c.end();
      assert.equal((await c.waitEnd()).status, "completed", "the refused cancel did not touch the stream");
    } finally {
      await t.close();
    }
  });

  it("allows them with the token on such a server, and refuses without it (401)", async () => {
    const t = await startTestServer({}, { exposed: true, token: "s3cret" });
    try {
      const without = await put(t, "fn", versioned("x"));
      assert.equal(without.status, 401);
      const withToken = await put(t, "fn", versioned("x"), { ...kTs, authorization: "Bearer s3cret" });
      assert.equal(withToken.status, 201, JSON.stringify(withToken.body));
    } finally {
      await t.close();
    }
  });
});
