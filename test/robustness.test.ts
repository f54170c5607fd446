import { strict as assert } from "node:assert";
import { connect } from "node:net";
import { describe, it } from "node:test";
import { SseClient, call, postEvents } from "./helpers/http-client.js";
import { eventually, startTestServer } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";

const echo = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  stallTimeoutMs: 300,
  async *handler(events) {
    for await (const e of events) yield { e, pad: "z".repeat(50000) };
  },
});`;

describe("robustness against misbehaving clients and shutdown", () => {
  it("cuts off an SSE subscriber that stops reading, so it cannot pin the stream", async () => {
    const t = await startTestServer({ "echo.ts": echo });
    try {
      await postEvents(t.url, "echo", "pinned", [{ data: 0, seq: 1 }]);
      // A raw subscriber that sends its request and then never reads a byte.
      const port = Number(new URL(t.url).port);
      const sock = connect(port, "127.0.0.1");
      await new Promise((r) => sock.once("connect", r));
      sock.write(`GET /v1/functions/echo/streams/pinned/outputs HTTP/1.1\r\nHost: x\r\n\r\n`);
      sock.pause();
      const events = Array.from({ length: 200 }, (_, i) => ({ data: i + 1, seq: i + 2 }));
      await postEvents(t.url, "echo", "pinned", events);
      const stream = t.server.router.get("echo", "pinned")!;
      await eventually(() => stream.heldAcks > 0, 10_000, "the subscriber to hold the handler");
      // After stallTimeoutMs of not reading, the subscriber is dropped and the handler runs free.
      await eventually(() => stream.outputs === 201, 10_000, "the handler to finish every event");
      assert.equal(stream.sinks.size, 0);
      sock.destroy();
    } finally {
      await t.close();
    }
  });

  it("bounds the output subscribers of one stream", async () => {
    const t = await startTestServer({ "echo.ts": echo });
    const subs: SseClient[] = [];
    try {
      await postEvents(t.url, "echo", "popular", [{ data: 0, seq: 1 }]);
      for (let i = 0; i < 64; i++) subs.push(new SseClient(`${t.url}/v1/functions/echo/streams/popular/outputs`));
      await Promise.all(subs.map((s) => s.waitResponse()));
      await eventually(() => t.server.router.get("echo", "popular")!.sinks.size === 64, 5_000, "64 subscribers");
      const refused = await call(`${t.url}/v1/functions/echo/streams/popular/outputs`);
      assert.equal(refused.status, 503);
      assert.equal(refused.body.error!.code, "CAPACITY_EXCEEDED");
      assert.ok(refused.headers.get("retry-after"));
    } finally {
      for (const s of subs) s.close();
      await t.close();
    }
  });

  it("acknowledges a retried batch after its stream ended, and opens nothing for an end-only post", async () => {
    const t = await startTestServer({ "echo.ts": echo });
    try {
      const first = await postEvents(t.url, "echo", "retry", [{ data: "a", seq: 1 }, { data: "b", seq: 2 }, { end: true }]);
      assert.equal(first.status, 202);
      await eventually(() => t.server.router.ended("echo", "retry"), 5_000, "the stream to end");
      const again = await postEvents(t.url, "echo", "retry", [{ data: "a", seq: 1 }, { data: "b", seq: 2 }, { end: true }]);
      assert.equal(again.status, 202);
      assert.deepEqual(again.body, { accepted: 0, duplicates: 2, lastSeq: 2, ended: true });
      const fresh = await postEvents(t.url, "echo", "retry", [{ data: "c", seq: 3 }]);
      assert.equal(fresh.status, 409);
      assert.equal(fresh.body.error!.code, "STREAM_ENDED");
      const endOnly = await postEvents(t.url, "echo", "never-started", [{ end: true }]);
      assert.equal(endOnly.status, 404);
      assert.equal(endOnly.body.error!.code, "STREAM_NOT_FOUND");
      assert.equal(t.server.router.get("echo", "never-started"), undefined);
      assert.equal((await call(`${t.url}/v1/functions/echo/streams/never-started`)).status, 404);
    } finally {
      await t.close();
    }
  });

  it("closes a WebSocket that floods bad messages without reading the error records", async () => {
    const t = await startTestServer({ "echo.ts": echo });
    try {
      const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/echo/streams/flood`);
      c.ws.pause(); // read nothing
      const bad = "x".repeat(200);
      for (let i = 0; i < 100_000 && c.ws.readyState === c.ws.OPEN; i++) c.send(bad);
      const ended = await eventually(() => t.server.router.ended("echo", "flood"), 15_000, "the flooder to be cut off");
      assert.equal(ended.reason, "disconnect");
      c.ws.terminate();
    } finally {
      await t.close();
    }
  });

  it("sends WebSocket producers their end record when the server shuts down: reason shutdown once the handler finished", async () => {
    const t = await startTestServer({ "echo.ts": echo }, { graceMs: 10_000 });
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/echo/streams/bye`);
    c.event(1);
    await c.waitFor((r) => r.type === "output");
    await t.close();
    const end = await c.waitEnd();
    assert.equal(end.status, "completed", JSON.stringify(end));
    assert.equal(end.reason, "shutdown");
    assert.notEqual(await c.waitClose(), 1006);
  });

  it("with no grace period, a stream still running at shutdown fails with SHUTDOWN_TIMEOUT", async () => {
    const t = await startTestServer({ "echo.ts": echo }, { graceMs: 0 });
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/echo/streams/bye`);
    c.event(1);
    await c.waitFor((r) => r.type === "output");
    await t.close();
    const end = await c.waitEnd();
    assert.equal(end.status, "failed");
    assert.equal((end.error as { code: string }).code, "SHUTDOWN_TIMEOUT");
    assert.notEqual(await c.waitClose(), 1006);
  });
});
