// Contract: affinity, order, seq dedup and numbered outputs, over real WebSockets.
import { strict as assert } from "node:assert";
import { after, before, describe, it } from "node:test";
import { fnSource } from "./helpers/contract-util.js";
import { forEachSandbox, inProcessOnly, startContractTarget } from "./helpers/contract-target.js";
import type { ContractTarget } from "./helpers/contract-target.js";
import { startTestServer } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";
import type { Rec } from "./helpers/ws-client.js";

// Every invocation draws its own random id: two invocations for one stream would show two ids.
// Random short awaits make invocations on one instance interleave.
const tagged = fnSource(
  `{
  concurrency: 8,
  async *handler(events, ctx) {
    const invocation = randomUUID();
    for await (const e of events) {
      if (Math.random() < 0.2) await new Promise((r) => setTimeout(r, 1));
      yield { invocation, stream: ctx.streamId, seq: ctx.event.seq, e };
    }
    yield { invocation, after: true, endReason: ctx.endReason };
  },
}`,
  `import { randomUUID } from "node:crypto";`,
);

// Several outputs after the end of input, some after an await: all still delivered, in order.
const epilogue = fnSource(`{
  async *handler(events, ctx) {
    let n = 0;
    for await (const _ of events) n++;
    for (let i = 1; i <= 5; i++) {
      await new Promise((r) => setTimeout(r, 2));
      yield { tail: i, n, endReason: ctx.endReason };
    }
  },
}`);

interface Tagged {
  invocation: string;
  stream: string;
  seq: number;
  e: { s: number; i: number } | string;
  after?: boolean;
  endReason?: string;
}

function outputRecords(c: StreamClient): Rec[] {
  return c.records.filter((r) => r.type === "output");
}

forEachSandbox((sandbox) =>
describe(`contract: affinity, order, sequence, numbered outputs [${sandbox} sandbox]`, () => {
  let t: ContractTarget;
  before(async () => {
    t = await startContractTarget({ "tagged.ts": tagged, "epilogue.ts": epilogue }, { sandbox });
  });
  after(() => t.close());

  it("gives each of many interleaved streams one invocation that sees only its own events, in order", async () => {
    const streams = 24;
    const perStream = 40;
    const clients = await Promise.all(
      Array.from({ length: streams }, (_, s) => StreamClient.connect(`${t.wsUrl}/v1/functions/tagged/streams/order-${s}`)),
    );
    // Round-robin across connections, so the streams' events interleave on the server.
    for (let i = 0; i < perStream; i++) {
      for (let s = 0; s < streams; s++) clients[s]!.event({ s, i });
    }
    for (const c of clients) c.end();
    const ends = await Promise.all(clients.map((c) => c.waitEnd(15_000)));

    const invocations = new Set<string>();
    for (let s = 0; s < streams; s++) {
      const c = clients[s]!;
      assert.equal(ends[s]!.status, "completed", JSON.stringify(ends[s]));
      assert.equal(ends[s]!.reason, "end");
      assert.equal(ends[s]!.events, perStream);
      assert.equal(ends[s]!.outputs, perStream + 1);
      assert.deepEqual(c.errors(), []);
      const outs = outputRecords(c);
      assert.deepEqual(
        outs.map((r) => r.n),
        Array.from({ length: perStream + 1 }, (_, i) => i + 1),
        "output numbers are 1, 2, 3, ... without gaps",
      );
      const data = outs.map((r) => r.data as Tagged);
      const ids = new Set(data.map((d) => d.invocation));
      assert.equal(ids.size, 1, `stream ${s} saw ${ids.size} invocations`);
      invocations.add([...ids][0]!);
      const events = data.slice(0, perStream);
      assert.ok(events.every((d) => d.stream === `order-${s}`));
      assert.deepEqual(
        events.map((d) => d.e),
        Array.from({ length: perStream }, (_, i) => ({ s, i })),
        `stream ${s} got exactly its own events in order`,
      );
      assert.deepEqual(
        events.map((d) => d.seq),
        Array.from({ length: perStream }, (_, i) => i + 1),
        "events without seq get their arrival positions",
      );
      assert.deepEqual(data[perStream], { invocation: [...ids][0], after: true, endReason: "end" });
    }
    assert.equal(invocations.size, streams, "every stream had its own invocation");
    // Those streams shared instances (concurrency 8): affinity is per stream, not per instance.
    assert.ok((await t.current("tagged")).coldStarts < streams);
  });

  it("drops retries (seq at or below the last seen) without delivering them twice", async () => {
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/tagged/streams/dedup`);
    c.event("a", 1);
    c.event("b", 2);
    c.event("c", 3);
    c.event("dup-2", 2); // a retry of 2
    c.event("dup-3", 3); // a retry of 3
    c.event("e", 5); // seq may skip
    c.event("dup-4", 4); // below the last seen (5): a late retry, dropped
    c.event("dup-5", 5);
    c.event("f"); // no seq: the next position after the last seen
    c.event("g", 9);
    c.event("h");
    c.end();
    const end = await c.waitEnd();
    assert.equal(end.status, "completed");
    assert.equal(end.events, 7, "retries do not count as events");
    const data = c.outputs().slice(0, -1) as Tagged[];
    assert.deepEqual(
      data.map((d) => [d.e, d.seq]),
      [
        ["a", 1],
        ["b", 2],
        ["c", 3],
        ["e", 5],
        ["f", 6],
        ["g", 9],
        ["h", 10],
      ],
    );
    assert.deepEqual(c.errors(), [], "a retry is not an error");
  });

  it("a retry after a gap-free run is dropped even when it arrives long after", async () => {
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/tagged/streams/dedup-late`);
    for (let i = 1; i <= 5; i++) c.event(`v${i}`, i);
    await c.waitFor((r) => r.type === "output" && (r.data as Tagged).seq === 5);
    for (let i = 1; i <= 5; i++) c.event(`again${i}`, i);
    c.event("v6", 6);
    c.end();
    await c.waitEnd();
    const data = c.outputs().slice(0, -1) as Tagged[];
    assert.deepEqual(
      data.map((d) => d.e),
      ["v1", "v2", "v3", "v4", "v5", "v6"],
    );
  });

  it("numbers outputs in order, including ones yielded after the end of input", async () => {
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/epilogue/streams`);
    for (let i = 0; i < 3; i++) c.event(i);
    c.end();
    const end = await c.waitEnd();
    assert.equal(end.status, "completed");
    assert.equal(end.outputs, 5);
    const outs = outputRecords(c);
    assert.deepEqual(
      outs.map((r) => [r.n, (r.data as { tail: number }).tail]),
      [
        [1, 1],
        [2, 2],
        [3, 3],
        [4, 4],
        [5, 5],
      ],
    );
    assert.deepEqual(outs[0]!.data, { tail: 1, n: 3, endReason: "end" });
    // The end record comes after every output.
    assert.equal(c.records.at(-1)!.type, "end");
  });
}));

// Observers are how components inside the server process watch streams: embedded mode only.
describe("router observer: each stream's life is reported in order", () => {
  it("opened, then bound (at once, or after waiting for a slot), then closed", inProcessOnly(), async () => {
    const life = new Map<string, string[]>();
    const note = (id: string, what: string): void => {
      life.set(id, [...(life.get(id) ?? []), what]);
    };
    const t = await startTestServer(
      { "one.ts": fnSource(`{ concurrency: 1, maxInstances: 1, async *handler(events) { for await (const e of events) yield e; } }`) },
      {
        observer: {
          streamOpened: (s) => note(s.streamId, "opened"),
          streamBound: (s) => note(s.streamId, "bound"),
          streamClosed: (s) => note(s.streamId, "closed"),
        },
      },
    );
    try {
      const a = await StreamClient.connect(`${t.wsUrl}/v1/functions/one/streams/life-a`);
      const b = await StreamClient.connect(`${t.wsUrl}/v1/functions/one/streams/life-b`); // waits for a's slot
      a.event(1);
      b.event(2);
      a.end();
      await a.waitEnd();
      b.end();
      await b.waitEnd();
      assert.deepEqual(life.get("life-a"), ["opened", "bound", "closed"]);
      assert.deepEqual(life.get("life-b"), ["opened", "bound", "closed"]);
    } finally {
      await t.close();
    }
  });
});

