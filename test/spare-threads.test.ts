import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
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
