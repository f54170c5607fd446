// Contract: every way a stream's input ends, and what the handler and the producer see.
import { strict as assert } from "node:assert";
import { after, before, describe, it } from "node:test";
import { fnSource } from "./helpers/contract-util.js";
import { forEachSandbox, startContractTarget } from "./helpers/contract-target.js";
import type { ContractTarget } from "./helpers/contract-target.js";
import { eventually } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";

// Counts events, then reports how its input ended: one output after the end.
const counter = (options: string): string =>
  fnSource(`{
  ${options}
  async *handler(events, ctx) {
    let n = 0;
    for await (const _ of events) n++;
    yield { n, endReason: ctx.endReason };
  },
}`);

forEachSandbox((sandbox) =>
describe(`contract: end of a stream [${sandbox} sandbox]`, () => {
  let t: ContractTarget;
  before(async () => {
    t = await startContractTarget({
      "plain.ts": counter(""),
      "idle.ts": counter("idleTimeoutMs: 150,"),
      "patient.ts": counter("idleTimeoutMs: 600,"),
      "short.ts": counter("maxDurationMs: 250, idleTimeoutMs: 10000,"),
      "few.ts": counter("maxEvents: 3,"),
    }, { sandbox });
  });
  after(() => t.close());

  it("ends on an explicit {\"end\":true}", async () => {
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/plain/streams/explicit`);
    c.event(1);
    c.event(2);
    c.end();
    const end = await c.waitEnd();
    assert.deepEqual(
      { status: end.status, reason: end.reason, events: end.events, outputs: end.outputs },
      { status: "completed", reason: "end", events: 2, outputs: 1 },
    );
    assert.deepEqual(c.outputs(), [{ n: 2, endReason: "end" }]);
    assert.equal(await c.waitClose(), 1000);
  });

  it("ends when the producer closes its WebSocket normally", async () => {
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/plain/streams/closed-normally`);
    c.event(1);
    c.event(2);
    c.event(3);
    c.close(1000);
    const rec = await t.closed("plain", "closed-normally");
    assert.equal(rec.record.status, "completed");
    assert.equal(rec.record.reason, "end");
    assert.equal(rec.record.events, 3);
    assert.deepEqual(rec.outputs, [{ n: 3, endReason: "end" }]);
    assert.equal((await t.stream("plain", "closed-normally"))?.reason, "end");
  });

  it("ends with reason disconnect when the connection is lost without a close", async () => {
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/plain/streams/lost`);
    c.event(1);
    await eventually(async () => (await t.stream("plain", "lost"))?.events === 1, 5_000, "the event to arrive");
    c.ws.terminate();
    const rec = await t.closed("plain", "lost");
    assert.equal(rec.record.status, "completed");
    assert.equal(rec.record.reason, "disconnect");
    assert.deepEqual(rec.outputs, [{ n: 1, endReason: "disconnect" }]);
  });

  it("ends after idleTimeoutMs without events", async () => {
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/idle/streams/idle-1`);
    c.event("x");
    const end = await c.waitEnd();
    assert.equal(end.status, "completed");
    assert.equal(end.reason, "idle");
    assert.deepEqual(c.outputs(), [{ n: 1, endReason: "idle" }]);
  });

  it("keeps a stream alive while events keep coming within the idle timeout", async () => {
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/patient/streams/idle-busy`);
    for (let i = 0; i < 6; i++) {
      c.event(i);
      await new Promise((r) => setTimeout(r, 150)); // well inside the 600 ms idle timeout; 900 ms in all
    }
    c.end();
    const end = await c.waitEnd();
    assert.equal(end.reason, "end", "the idle timer restarts with every event");
    assert.deepEqual(c.outputs(), [{ n: 6, endReason: "end" }]);
  });

  it("ends after maxDurationMs even while events keep coming; later events are refused", async () => {
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/short/streams/long-running`);
    let sent = 0;
    while (!c.records.some((r) => r.type === "end") && sent < 200) {
      c.event(sent++);
      await new Promise((r) => setTimeout(r, 20));
    }
    const end = await c.waitEnd();
    assert.equal(end.status, "completed");
    assert.equal(end.reason, "max-duration");
    const out = c.outputs()[0] as { n: number; endReason: string };
    assert.equal(out.endReason, "max-duration");
    assert.equal(out.n, end.events);
    assert.ok((end.events as number) >= 5, "events kept coming until the limit");
    for (const e of c.errors()) assert.equal(e.code, "STREAM_INPUT_ENDED");
  });

  it("ends after maxEvents; the events beyond get STREAM_INPUT_ENDED", async () => {
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/few/streams/few-1`);
    for (let i = 1; i <= 5; i++) c.event(i, i);
    const end = await c.waitEnd();
    assert.equal(end.status, "completed");
    assert.equal(end.reason, "max-events");
    assert.equal(end.events, 3);
    assert.deepEqual(c.outputs(), [{ n: 3, endReason: "max-events" }]);
    // Events 4 and 5 may race the end record and the close; those that arrived were refused.
    for (const e of c.errors()) {
      assert.match(String(e.code), /^STREAM_(INPUT_)?ENDED$/);
      assert.ok(e.seq === 4 || e.seq === 5);
    }
  });

  it("a handler that returns before its input ends closes the stream with reason returned", async () => {
    const t2 = await startContractTarget({
      "first.ts": fnSource(`{
        async handler(events) {
          for await (const e of events) return { first: e };
        },
      }`),
    }, { sandbox });
    try {
      const c = await StreamClient.connect(`${t2.wsUrl}/v1/functions/first/streams`);
      c.event("a");
      const end = await c.waitEnd();
      assert.equal(end.status, "completed");
      assert.equal(end.reason, "returned");
      assert.deepEqual(c.outputs(), [{ first: "a" }]);
    } finally {
      await t2.close();
    }
  });
}));
