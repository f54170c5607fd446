import { strict as assert } from "node:assert";
import { once } from "node:events";
import { describe, it } from "node:test";
import { SpareThreads, bootSparesEarly } from "../src/instances/spare-threads.js";
import { eventually, startTestServer } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";

const fn = (memory: string): string => `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  ${memory}
  keepAliveMs: 0,
  async *handler(events) { for await (const e of events) yield e; },
});`;

async function oneStream(wsUrl: string, name: string): Promise<unknown[]> {
  const c = await StreamClient.connect(`${wsUrl}/v1/functions/${name}/streams`);
  c.event({ hello: name });
  c.end();
  assert.equal((await c.waitEnd(10_000)).status, "completed");
  return c.outputs();
}

describe("spare threads", () => {
  it("starts instances on a booted spare thread, refills it, and boots its own thread for another heap size", async () => {
    const t = await startTestServer({ "plain.ts": fn(""), "big.ts": fn("memoryMb: 300,") }, { spareThreads: 1 });
    try {
      const spares = t.server.spares;
      await eventually(() => spares.ready === 1, 10_000, "the spare to exist");
      assert.deepEqual(await oneStream(t.wsUrl, "plain"), [{ hello: "plain" }]);
      assert.equal(spares.taken, 1);
      // The instance stops at once (keepAliveMs 0); the next cold start takes the refilled spare.
      await eventually(() => t.server.registry.current("plain")!.stats().instances === 0 && spares.ready === 1, 10_000, "scale to zero and refill");
      assert.deepEqual(await oneStream(t.wsUrl, "plain"), [{ hello: "plain" }]);
      assert.equal(spares.taken, 2);
      // A different heap limit cannot use a spare made with the default one.
      assert.deepEqual(await oneStream(t.wsUrl, "big"), [{ hello: "big" }]);
      assert.equal(spares.taken, 2);
    } finally {
      await t.close();
    }
  });

  it("adopts threads booted before the settings were read, and ends those it cannot use", async () => {
    const [a, b] = bootSparesEarly(2, 256);
    const spares = new SpareThreads(1, 256);
    const surplus = once(b!, "exit");
    try {
      assert.equal(spares.take(256), a, "the early thread is the spare");
      await surplus; // one spare was asked for: the second early thread is terminated
    } finally {
      await spares.close();
      await a!.terminate();
    }
    // One that died before the server was ready is not adopted.
    const [dead] = bootSparesEarly(1, 256);
    await dead!.terminate();
    const afterDeath = new SpareThreads(1, 256);
    try {
      const live = afterDeath.take(256);
      assert.ok(live && live !== dead, "a fresh spare, not the dead one");
      await live.terminate();
    } finally {
      await afterDeath.close();
    }
    const [other] = bootSparesEarly(1, 256);
    const gone = once(other!, "exit");
    const bigger = new SpareThreads(1, 300);
    try {
      await gone; // booted with another heap size
      const taken = bigger.take(300);
      assert.ok(taken && taken !== other);
      await taken.terminate();
    } finally {
      await bigger.close();
    }
  });

  it("works with spares turned off", async () => {
    const t = await startTestServer({ "plain.ts": fn("") }, { spareThreads: 0 });
    try {
      assert.deepEqual(await oneStream(t.wsUrl, "plain"), [{ hello: "plain" }]);
      assert.equal(t.server.spares.taken, 0);
    } finally {
      await t.close();
    }
  });
});
