import { strict as assert } from "node:assert";
import { after, before, describe, it } from "node:test";
import { startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";

const echo = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  async *handler(events, ctx) {
    for await (const e of events) yield { e, seq: ctx.event.seq };
    yield { endReason: ctx.endReason, streamId: ctx.streamId, fn: ctx.functionName };
  },
});`;

const total = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction<Uint8Array | number, unknown>({
  async handler(events) {
    let n = 0; let bytes = 0;
    for await (const e of events) { n++; if (e instanceof Uint8Array) bytes += e.byteLength; }
    return { n, bytes };
  },
});`;

describe("WebSocket streams", () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ "echo.ts": echo, "total.ts": total });
  });
  after(() => t.close());

  it("delivers events in order to one invocation and numbers outputs, including after the end", async () => {
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/echo/streams/s1`);
    for (let i = 1; i <= 50; i++) c.event({ i });
    c.end();
    const end = await c.waitEnd();
    assert.equal(end.status, "completed");
    assert.equal(end.reason, "end");
    assert.equal(end.events, 50);
    const outs = c.records.filter((r) => r.type === "output");
    assert.deepEqual(outs.map((r) => r.n), Array.from({ length: 51 }, (_, i) => i + 1));
    assert.deepEqual(outs.slice(0, 50).map((r) => (r.data as { e: { i: number } }).e.i), Array.from({ length: 50 }, (_, i) => i + 1));
    assert.deepEqual(outs[50]!.data, { endReason: "end", streamId: "s1", fn: "echo" });
    assert.equal(c.records[0]!.type, "open");
    assert.equal(await c.waitClose(), 1000);
  });

  it("names the stream when the producer does not", async () => {
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/echo/streams`);
    const open = await c.waitFor((r) => r.type === "open");
    assert.match(String(open.streamId), /^[0-9a-f-]{36}$/);
    c.end();
    await c.waitEnd();
  });

  it("hands binary frames to the handler as Uint8Array; async-function handlers return one output", async () => {
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/total/streams`);
    c.binary(new Uint8Array(1000));
    c.binary(new Uint8Array(24));
    c.event(7);
    c.end();
    const end = await c.waitEnd();
    assert.equal(end.status, "completed");
    assert.deepEqual(c.outputs(), [{ n: 3, bytes: 1024 }]);
  });

  it("refuses an unknown function at the handshake with 404 and a code", async () => {
    await assert.rejects(StreamClient.connect(`${t.wsUrl}/v1/functions/nope/streams`), (err: { status: number; body: { error: { code: string } } }) => {
      assert.equal(err.status, 404);
      assert.equal(err.body.error.code, "FUNCTION_NOT_FOUND");
      return true;
    });
  });
});
