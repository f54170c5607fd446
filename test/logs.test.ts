// ctx.log lines and the server's structured log, over real sockets.
import { strict as assert } from "node:assert";
import { after, before, describe, it } from "node:test";
import { defineStreamFunction, runStream } from "../src/api/index.js";
import type { StreamLogEntry } from "../src/api/index.js";
import { formatRecord } from "../src/server/logger.js";
import { fnSource } from "./helpers/contract-util.js";
import { call } from "./helpers/http-client.js";
import { LogFollow } from "./helpers/log-follow.js";
import { eventually, startTestServer } from "./helpers/server.js";
import type { LogRecordJson, TestServer } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";

const talk = fnSource(`{
  idleTimeoutMs: 60000,
  async *handler(events, ctx) {
    for await (const e of events) {
      if (e === "throw") throw new RangeError("x");
      if (e === "big") { for (let i = 0; i < 1000; i++) ctx.log.info("x".repeat(8000)); continue; }
      if (e === "flood") { for (let i = 0; i < 10000; i++) ctx.log.info("line", i); continue; }
      if (e && typeof e === "object" && "log" in e) ctx.log[e.level](e.log, { n: 1 });
      yield e;
    }
  },
}`);

const isolated = fnSource(`{
  sandbox: "process",
  idleTimeoutMs: 60000,
  async *handler(events, ctx) {
    for await (const e of events) {
      ctx.log.warn("from a process:", e);
      yield e;
    }
  },
}`);

const spin = fnSource(`{
  unresponsiveMs: 300,
  async *handler(events) {
    for await (const e of events) {
      if (e === "spin") for (;;) {}
      yield e;
    }
  },
}`);

function versionOf(t: TestServer, fn: string): string {
  return t.server.registry.functions().find((f) => f.name === fn)!.current!.version;
}

async function open(t: TestServer, fn: string, id: string): Promise<StreamClient> {
  return StreamClient.connect(`${t.wsUrl}/v1/functions/${fn}/streams/${id}`);
}

function serverLines(t: TestServer, streamId: string): LogRecordJson[] {
  return t.logs.filter((r) => r.source === "ctx.log" && r.streamId === streamId);
}

describe("stream logs", () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ "talk.ts": talk, "isolated.ts": isolated, "spin.ts": spin });
  });
  after(() => t.close());

  it("keeps a stream's ctx.log lines with their level, live and after it ended, and writes them to the server log", async () => {
    const c = await open(t, "talk", "s1");
    c.event({ log: "hello", level: "info" });
    await c.waitFor((r) => r.type === "output");
    const live = await call(`${t.url}/v1/functions/talk/streams/s1/logs`);
    assert.equal(live.status, 200);
    const liveLines = live.body.lines as StreamLogEntry[];
    assert.equal(liveLines.length, 1);
    assert.equal(liveLines[0]!.level, "info");
    assert.equal(liveLines[0]!.msg, "hello { n: 1 }");
    assert.equal(typeof liveLines[0]!.time, "number");

    c.event({ log: "careful", level: "warn" });
    c.event({ log: "bad", level: "error" });
    c.end();
    await c.waitEnd();
    const ended = await call(`${t.url}/v1/functions/talk/streams/s1/logs`);
    assert.deepEqual(
      (ended.body.lines as StreamLogEntry[]).map((l) => [l.level, l.msg]),
      [["info", "hello { n: 1 }"], ["warn", "careful { n: 1 }"], ["error", "bad { n: 1 }"]],
    );
    assert.equal(ended.body.dropped, 0);

    const lines = await eventually(() => (serverLines(t, "s1").length === 3 ? serverLines(t, "s1") : undefined), 5_000, "the lines in the server log");
    assert.deepEqual(lines.map((r) => [r.level, r.msg]), [["info", "hello { n: 1 }"], ["warn", "careful { n: 1 }"], ["error", "bad { n: 1 }"]]);
    for (const r of lines) {
      assert.equal(r.fn, "talk");
      assert.equal(r.version, versionOf(t, "talk"));
      assert.equal(r.streamId, "s1");
      assert.match(r.time, /^\d{4}-\d\d-\d\dT/);
    }
  });

  it("answers 404 STREAM_NOT_FOUND for a stream that is neither live nor recently ended, and 400 for a bad follow", async () => {
    const missing = await call(`${t.url}/v1/functions/talk/streams/nobody/logs`);
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error!.code, "STREAM_NOT_FOUND");
    const noFn = await call(`${t.url}/v1/functions/nope/logs?follow=1`);
    assert.equal(noFn.status, 404);
    assert.equal(noFn.body.error!.code, "FUNCTION_NOT_FOUND");
    const unfollowed = await call(`${t.url}/v1/functions/talk/logs`);
    assert.equal(unfollowed.status, 400);
    assert.equal(unfollowed.body.error!.code, "INVALID_REQUEST");
    const c = await open(t, "talk", "bad-follow");
    c.event(1);
    await c.waitFor((r) => r.type === "output");
    const bad = await call(`${t.url}/v1/functions/talk/streams/bad-follow/logs?follow=soon`);
    assert.equal(bad.status, 400);
    assert.match(bad.body.error!.message, /follow must be 1 or 0/);
    c.end();
    await c.waitEnd();
  });

  it("follows a stream: kept lines, then lines logged after it connected, then the end record", async () => {
    const c = await open(t, "talk", "s2");
    c.event({ log: "before", level: "info" });
    await c.waitFor((r) => r.type === "output");
    const f = new LogFollow(`${t.url}/v1/functions/talk/streams/s2/logs?follow=1`);
    try {
      const res = await f.connected();
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers["content-type"], "application/x-ndjson");
      await f.waitFor((r) => r.msg === "before { n: 1 }", "the kept line");
      c.event({ log: "after", level: "warn" });
      const line = await f.waitFor((r) => r.msg === "after { n: 1 }", "the line logged while following");
      assert.equal(line.type, "log");
      assert.equal(line.level, "warn");
      c.end();
      await c.waitEnd();
      const end = await f.waitFor((r) => r.type === "end", "the end record");
      assert.equal(end.status, "completed");
      assert.equal(end.dropped, 0);
      await eventually(() => f.ended, 5_000, "the follow response to end");
    } finally {
      f.close();
    }
    // Following a stream that already ended: its lines and its end record at once.
    const again = new LogFollow(`${t.url}/v1/functions/talk/streams/s2/logs?follow=1`);
    await eventually(() => again.ended, 5_000, "the ended stream's follow to end");
    assert.deepEqual(again.records.map((r) => r.type), ["log", "log", "end"]);
  });

  it("follows every stream of a function, each line with its stream id and version", async () => {
    const f = new LogFollow(`${t.url}/v1/functions/talk/logs?follow=1`);
    try {
      await f.connected();
      const a = await open(t, "talk", "fa");
      const b = await open(t, "talk", "fb");
      a.event({ log: "from a", level: "info" });
      b.event({ log: "from b", level: "error" });
      const la = await f.waitFor((r) => r.msg === "from a { n: 1 }", "a's line");
      const lb = await f.waitFor((r) => r.msg === "from b { n: 1 }", "b's line");
      assert.equal(la.streamId, "fa");
      assert.equal(lb.streamId, "fb");
      assert.equal(lb.level, "error");
      assert.equal(la.version, versionOf(t, "talk"));
      a.end();
      b.end();
      await a.waitEnd();
      await b.waitEnd();
      assert.equal(f.ended, false, "a function follow outlives its streams");
    } finally {
      f.close();
    }
  });

  it("logs a HANDLER_ERROR with the error's name, message and sandbox stack; the producer's end record has error.name", async () => {
    const c = await open(t, "talk", "s4");
    c.event("throw");
    const end = await c.waitEnd();
    assert.equal(end.status, "failed");
    assert.deepEqual(end.error, { code: "HANDLER_ERROR", message: "x", name: "RangeError" });
    const failed = await eventually(() => t.logs.find((r) => r.msg === "stream failed" && r.streamId === "s4"), 5_000, "the failure record");
    assert.equal(failed.level, "error");
    assert.equal(failed.fn, "talk");
    assert.equal(failed.version, versionOf(t, "talk"));
    assert.equal(failed.code, "HANDLER_ERROR");
    const error = failed.error as { name: string; message: string; stack: string };
    assert.equal(error.name, "RangeError");
    assert.equal(error.message, "x");
    assert.match(error.stack, /^RangeError: x\n\s+at /);
    assert.match(error.stack, /handler/, "the frames are the handler's, from the sandbox");
    const status = await call(`${t.url}/v1/functions/talk/streams/s4`);
    assert.equal((status.body.error as { stack?: string }).stack, undefined, "the stack stays in the server log");
  });

  it("keeps at most 200 lines of a handler that logs 10 000, counts the rest, and rate-limits the server log", async () => {
    const c = await open(t, "talk", "flood");
    c.event("flood");
    c.end();
    await c.waitEnd();
    const { body } = await call(`${t.url}/v1/functions/talk/streams/flood/logs`);
    const lines = body.lines as StreamLogEntry[];
    assert.equal(lines.length, 200);
    assert.equal(lines.length + (body.dropped as number), 10_000, "every line is kept or counted");
    const ns = lines.map((l) => Number(l.msg.split(" ")[1]));
    assert.deepEqual(ns, [...ns].sort((a, b) => a - b), "kept lines are in order");
    assert.ok(serverLines(t, "flood").length < 2_000, `the server log got ${serverLines(t, "flood").length} of 10 000 lines`);
  });

  it("cuts off a follower that does not read instead of buffering for it", async () => {
    const c = await open(t, "talk", "big");
    c.event({ log: "start", level: "info" });
    await c.waitFor((r) => r.type === "output");
    const f = new LogFollow(`${t.url}/v1/functions/talk/streams/big/logs?follow=1`);
    try {
      const res = await f.connected();
      res.pause(); // a reader that stops reading
      assert.equal(t.server.logFollowers.count, 1);
      c.event("big"); // ~8 MB of lines, more than the socket buffers and the 1 MiB backlog
      await eventually(() => t.server.logFollowers.count === 0, 10_000, "the slow follower to be cut off");
      res.resume();
      const last = await f.waitFor((r) => r.type === "error", "the cut-off record");
      assert.equal(last.code, "CAPACITY_EXCEEDED");
      await eventually(() => f.ended, 10_000, "the response to end");
      assert.ok(f.records.length < 1_000, `${f.records.length} records reached the slow reader`);
    } finally {
      f.close();
      c.end();
      await c.waitEnd();
    }
  });

  it("refuses followers past 256 with 503 CAPACITY_EXCEEDED", async () => {
    const follows: LogFollow[] = [];
    try {
      for (let i = 0; i < 256; i++) follows.push(new LogFollow(`${t.url}/v1/functions/talk/logs?follow=1`));
      await eventually(() => t.server.logFollowers.count === 256, 20_000, "256 followers");
      const refused = await call(`${t.url}/v1/functions/talk/logs?follow=1`);
      assert.equal(refused.status, 503);
      assert.equal(refused.body.error!.code, "CAPACITY_EXCEEDED");
      assert.ok(refused.headers.get("retry-after"));
    } finally {
      for (const f of follows) f.close();
    }
    await eventually(() => t.server.logFollowers.count === 0, 10_000, "followers that left to be forgotten");
  });

  it("carries ctx.log lines from a process sandbox too", async () => {
    const c = await open(t, "isolated", "p1");
    c.event({ a: 1 });
    c.end();
    await c.waitEnd(10_000);
    const { body } = await call(`${t.url}/v1/functions/isolated/streams/p1/logs`);
    assert.deepEqual((body.lines as StreamLogEntry[]).map((l) => [l.level, l.msg]), [["warn", "from a process: { a: 1 }"]]);
    const r = await eventually(() => serverLines(t, "p1")[0], 5_000, "the process sandbox's line in the server log");
    assert.equal(r.fn, "isolated");
    assert.equal(r.level, "warn");
  });

  it("logs an instance recycled for blocking its event loop, and the stream that failed with it", async () => {
    const c = await open(t, "spin", "sp1");
    c.event("spin");
    const end = await c.waitEnd(10_000);
    assert.equal((end.error as { code: string }).code, "INSTANCE_UNRESPONSIVE");
    const failed = await eventually(() => t.logs.find((r) => r.msg === "stream failed" && r.streamId === "sp1"), 5_000, "the failure record");
    assert.equal(failed.level, "error");
    assert.equal(failed.code, "INSTANCE_UNRESPONSIVE");
    assert.match(String(failed.message), /did not respond/);
    const exited = await eventually(() => t.logs.find((r) => r.msg === "instance exited" && r.fn === "spin"), 10_000, "the exit record");
    assert.equal(exited.level, "warn");
    assert.equal(exited.code, "INSTANCE_CRASHED");
    assert.equal(exited.version, versionOf(t, "spin"));
  });

  it("logs where it listens, the deploys and cold starts", () => {
    const listening = t.logs.find((r) => r.msg === "listening")!;
    assert.equal(listening.url, t.url);
    assert.deepEqual(listening.functions, ["isolated", "spin", "talk"]);
    assert.ok(t.logs.some((r) => r.msg === "deployed" && r.fn === "talk" && r.version === versionOf(t, "talk")));
    const cold = t.logs.find((r) => r.msg === "cold start" && r.fn === "isolated")!;
    assert.equal(typeof cold.ms, "number");
    assert.equal(cold.version, versionOf(t, "isolated"));
  });
});

describe("the server log and tokens", () => {
  const token = "tok-Very-Secret-4711";
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ "talk.ts": talk }, { token });
  });
  after(() => t.close());

  it("never writes the token, whether it came as ?token= or as a header", async () => {
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/talk/streams/t1?token=${token}`);
    c.event({ log: "hi", level: "info" });
    await c.waitFor((r) => r.type === "output");
    const f = new LogFollow(`${t.url}/v1/functions/talk/streams/t1/logs?follow=1&token=${token}`);
    await f.waitFor((r) => r.msg === "hi { n: 1 }", "the followed line");
    const byHeader = await call(`${t.url}/v1/functions/talk/streams/t1/logs`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(byHeader.status, 200);
    const refused = await call(`${t.url}/v1/functions/talk/streams/t1/logs?token=wrong-${token}`);
    assert.equal(refused.status, 401);
    c.event("throw");
    await c.waitEnd();
    await eventually(() => f.ended, 5_000, "the follow to end");
    await eventually(() => t.logs.some((r) => r.msg === "stream failed"), 5_000, "the failure record");
    assert.ok(t.logs.length >= 4, t.logText());
    assert.ok(!t.logText().includes(token), t.logText());
    assert.ok(!t.logText().includes("Very-Secret"), t.logText());
  });
});

describe("runStream and ctx.log", () => {
  it("hands each line to onLog, formatted as on the server", async () => {
    const fn = defineStreamFunction({
      async *handler(events: AsyncIterable<number>, ctx) {
        for await (const e of events) {
          ctx.log.info("got %d", e);
          yield e;
        }
        ctx.log.warn("done", { count: 2 });
      },
    });
    const lines: StreamLogEntry[] = [];
    assert.deepEqual(await runStream(fn, [1, 2], { onLog: (l) => lines.push(l) }), [1, 2]);
    assert.deepEqual(lines.map((l) => [l.level, l.msg]), [["info", "got 1"], ["info", "got 2"], ["warn", "done { count: 2 }"]]);
  });
});

describe("the readable form of the server log", () => {
  it("prints time, level, [fn@version/stream], message, other fields, and a stack indented under it", () => {
    const text = formatRecord(
      {
        level: "error",
        time: "2026-12-02T05:31:38.132Z",
        fn: "demo",
        version: "cac29d60b85a",
        streamId: "s1",
        code: "HANDLER_ERROR",
        error: { name: "RangeError", message: "x", stack: "RangeError: x\n    at handler (demo.mjs:1:1)" },
        msg: "stream failed",
      },
      false,
    );
    assert.equal(text, "05:31:38.132 error [demo@cac29d60/s1] stream failed code=HANDLER_ERROR\n    RangeError: x\n        at handler (demo.mjs:1:1)");
    const forged = formatRecord({ level: "info", time: "2026-12-02T05:31:38.132Z", msg: "a\n05:31:39.000 error fake" }, false);
    assert.equal(forged.split("\n")[1], "    05:31:39.000 error fake", "a handler's newline cannot start a record of its own");
  });
});
