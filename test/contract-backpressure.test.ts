// Contract: every queue is bounded; a slow handler slows its WebSocket producer instead of
// the server buffering without limit or dropping events.
import { strict as assert } from "node:assert";
import { after, before, describe, it } from "node:test";
import { fnSource } from "./helpers/contract-util.js";
import { forEachSandbox, notOnCluster, startContractTarget } from "./helpers/contract-target.js";
import type { ContractTarget, StreamStatusDoc } from "./helpers/contract-target.js";
import { eventually } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";

const kInboxLimit = 8;
/** Events the router lets into an instance ahead of the handler (router.ts kInstanceWindow). */
const kInstanceWindow = 64;

// Takes about a millisecond per event; checks order itself and reports only at the end, so
// output traffic does not mask input backpressure.
const slow = fnSource(`{
  inboxLimit: ${kInboxLimit},
  idleTimeoutMs: 20000,
  async handler(events) {
    let n = 0;
    let inOrder = true;
    for await (const e of events) {
      if (e.i !== n) inOrder = false;
      n++;
      if (n % 2 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    return { n, inOrder };
  },
}`);

forEachSandbox((sandbox) =>
describe(`contract: bounded inboxes and backpressure [${sandbox} sandbox]`, () => {
  let t: ContractTarget;
  before(async () => {
    t = await startContractTarget({ "slow.ts": slow }, { sandbox });
  });
  after(() => t.close());

  for (const [name, size] of [
    ["small events (many per socket read)", 16],
    ["large events (the socket fills up)", 4096],
  ] as const) {
    it(`slows a fast producer of ${name} to the handler's pace; nothing dropped, all in order`, async () => {
      const id = `bp-${size}`;
      const count = size > 1000 ? 800 : 1500;
      const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/slow/streams/${id}`);
      const pad = "p".repeat(size);
      let maxQueued = 0;
      let maxPending = 0;
      let watching = true;
      // Reads the stream's status over and over while it runs, as an operator could.
      const watch = (async () => {
        while (watching) {
          const s = await t.stream("slow", id);
          if (s?.state !== "running" && s?.state !== "waiting") continue;
          maxQueued = Math.max(maxQueued, s.queued!);
          maxPending = Math.max(maxPending, s.queued! + s.inflight!);
        }
      })();
      try {
        // As fast as the client library takes them: no waiting on the socket.
        for (let i = 0; i < count; i++) c.event({ i, pad });
        c.end();
        const end = await c.waitEnd(30_000);
        assert.deepEqual(c.errors(), [], "no event was refused");
        assert.equal(end.status, "completed", JSON.stringify(end));
        assert.equal(end.events, count);
        assert.deepEqual(c.outputs(), [{ n: count, inOrder: true }]);
      } finally {
        watching = false;
        await watch;
      }
      // The producer was far ahead (it sent everything at once); the server kept at most
      // inboxLimit events queued and a window's worth in the instance. The rest waited in the
      // connection (kernel buffers, then the producer's own).
      assert.ok(maxQueued <= kInboxLimit, `the router queued ${maxQueued} events for one stream (inboxLimit ${kInboxLimit})`);
      assert.ok(maxPending <= kInboxLimit + kInstanceWindow, `${maxPending} events were waiting for the handler`);
      assert.ok(maxQueued > 0, "the watch saw the inbox in use (else this test proves nothing)");
    });
  }

  it("a producer that paces itself on bufferedAmount never gets ahead of the handler by more than the bounds", async () => {
    const id = "bp-paced";
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/slow/streams/${id}`);
    let maxQueued = 0;
    const pad = "q".repeat(2048);
    for (let i = 0; i < 600; i++) {
      c.event({ i, pad });
      while (c.ws.bufferedAmount > 64 * 1024) await new Promise((r) => setTimeout(r, 2));
      maxQueued = Math.max(maxQueued, (await t.stream("slow", id))?.queued ?? 0);
    }
    c.end();
    const end = await c.waitEnd(30_000);
    assert.equal(end.status, "completed");
    assert.deepEqual(c.outputs(), [{ n: 600, inOrder: true }]);
    assert.ok(maxQueued <= kInboxLimit, `router queued ${maxQueued}`);
  });

  it("a producer held back by backpressure is not idle, even when the handler takes longer than idleTimeoutMs", async () => {
    const t2 = await startContractTarget({
      "pause.ts": fnSource(`{
        inboxLimit: 4,
        idleTimeoutMs: 100,
        async handler(events, ctx) {
          let n = 0;
          for await (const e of events) {
            // One long pause with the inbox full: the producer cannot send for longer than idleTimeoutMs.
            if (n++ === 0) await new Promise((r) => setTimeout(r, 400));
          }
          return { n, endReason: ctx.endReason };
        },
      }`),
    }, { sandbox });
    try {
      const c = await StreamClient.connect(`${t2.wsUrl}/v1/functions/pause/streams/held`);
      for (let i = 0; i < 200; i++) c.event(i);
      c.end();
      const end = await c.waitEnd(10_000);
      assert.deepEqual(c.errors(), []);
      assert.equal(end.status, "completed");
      assert.deepEqual(c.outputs(), [{ n: 200, endReason: "end" }]);
    } finally {
      await t2.close();
    }
  });

  it("a producer that closes its connection while held back still gets every event it sent handled", async () => {
    const id = "bp-close";
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/slow/streams/${id}`);
    for (let i = 0; i < 1000; i++) c.event({ i });
    c.close(1000); // no end message: the close ends the input, after the events before it
    const rec = await t.closed("slow", id, 20_000);
    assert.equal(rec.record.status, "completed");
    assert.equal(rec.record.reason, "end");
    assert.equal(rec.record.events, 1000);
    assert.deepEqual(rec.outputs, [{ n: 1000, inOrder: true }]);
  });

  it("a consumer that stops reading outputs holds the handler back without it being failed as stalled", async () => {
    const t2 = await startContractTarget({
      "big.ts": fnSource(`{
        stallTimeoutMs: 300,
        async *handler(events) {
          for await (const e of events) yield { e, pad: "z".repeat(100000) };
          yield "done";
        },
      }`),
    }, { sandbox });
    try {
      const id = "slow-reader";
      const c = await StreamClient.connect(`${t2.wsUrl}/v1/functions/big/streams/${id}`);
      c.ws.pause(); // stop reading: the server's writes back up
      for (let i = 0; i < 300; i++) c.event(i);
      c.end();
      // Wait until the server holds the handler's output credits, then well past stallTimeoutMs.
      await eventually(
        async () => {
          const s = await t2.stream("big", id);
          if (s === undefined || s.state === "ended") throw new Error(`the stream ended early: ${JSON.stringify(s)}`);
          return s.heldOutputs! > 0;
        },
        15_000,
        "outputs to back up",
      );
      await new Promise((r) => setTimeout(r, 700));
      const s: StreamStatusDoc | undefined = await t2.stream("big", id);
      assert.ok(s && s.state === "running", `the stream is still running: ${JSON.stringify(s)}`);
      assert.ok(s.outputs < 300, "the handler was held back, not racing ahead");
      c.ws.resume();
      const end = await c.waitEnd(20_000);
      assert.equal(end.status, "completed", JSON.stringify(end));
      assert.equal(end.outputs, 301);
      assert.equal(c.outputs().length, 301);
    } finally {
      await t2.close();
    }
  });

  it("a consumer slow to read the final outputs does not fail the handler's epilogue", async () => {
    const t2 = await startContractTarget({
      "tail.ts": fnSource(`{
        epilogueMs: 1000,
        async *handler(events) {
          let n = 0;
          for await (const _ of events) n++;
          // Everything comes after the end: the epilogue is all output.
          for (let i = 0; i < 300; i++) yield { i, n, pad: "z".repeat(100000) };
        },
      }`),
    }, { sandbox });
    try {
      const id = "slow-tail";
      const c = await StreamClient.connect(`${t2.wsUrl}/v1/functions/tail/streams/${id}`);
      c.ws.pause();
      c.event(1);
      c.end();
      await eventually(async () => ((await t2.stream("tail", id))?.heldOutputs ?? 0) > 0, 15_000, "outputs to back up");
      await new Promise((r) => setTimeout(r, 3000)); // three epilogues long
      const s = await t2.stream("tail", id);
      assert.equal(s?.state, "running", JSON.stringify(s));
      c.ws.resume();
      const end = await c.waitEnd(20_000);
      assert.equal(end.status, "completed", JSON.stringify(end));
      assert.equal(c.outputs().length, 300);
    } finally {
      await t2.close();
    }
  });

  it("the stream's inbox drains back to empty once the handler catches up", async () => {
    const id = "bp-drain";
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/slow/streams/${id}`);
    for (let i = 0; i < 200; i++) c.event({ i });
    await eventually(
      async () => {
        const s = await t.stream("slow", id);
        return s !== undefined && s.state !== "ended" && s.queued! + s.inflight! === 0;
      },
      10_000,
      "the handler to take every event",
    );
    c.end();
    assert.deepEqual((await c.waitEnd()).status, "completed");
    assert.deepEqual(c.outputs(), [{ n: 200, inOrder: true }]);
  });
}));
