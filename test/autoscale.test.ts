import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import { eventually, startTestServer } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";

// Each event costs the handler ~40 ms of pure CPU: a stream fed continuously keeps its
// instance's event loop saturated.
const burner = (sandbox: string): string => `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  sandbox: "${sandbox}",
  concurrency: 8,
  maxInstances: 2,
  async *handler(events) {
    for await (const e of events) {
      const until = performance.now() + 40;
      while (performance.now() < until) {}
      yield e;
    }
  },
});`;

// A thread's event loop is read from the parent; a child process reports its own with its
// batches. Placement must see both the same.
for (const sandbox of ["thread", "process"]) describe(`autoscaling on event-loop utilization [${sandbox} sandbox]`, () => {
  it("starts a new instance for a stream when the fullest one is CPU-saturated, though it has free slots", async () => {
    const t = await startTestServer({ "burner.ts": burner(sandbox) });
    try {
      const hot = await StreamClient.connect(`${t.wsUrl}/v1/functions/burner/streams/hot`);
      // One event in flight, the next sent as each output arrives: the instance stays saturated.
      let sent = 0;
      const feed = (): void => {
        if (hot.ws.readyState === hot.ws.OPEN && sent < 400) hot.event(sent++);
      };
      hot.ws.on("message", feed);
      feed();
      await hot.waitFor((r) => r.type === "output" && r.n === 5, 10_000);
      const pool = t.server.registry.current("burner")!;
      assert.equal(pool.stats().instances, 1);
      await eventually(() => [...pool.instances][0]!.utilization > 0.9, 5_000, "the instance to be saturated");
      const second = await StreamClient.connect(`${t.wsUrl}/v1/functions/burner/streams/second`);
      second.event("x");
      await second.waitFor((r) => r.type === "output", 10_000);
      assert.equal(pool.stats().instances, 2, "the second stream went to a new instance");
      const third = await StreamClient.connect(`${t.wsUrl}/v1/functions/burner/streams/third`);
      // maxInstances reached: a busy instance still takes the stream rather than queueing it.
      third.event("y");
      await third.waitFor((r) => r.type === "output", 10_000);
      assert.equal(pool.stats().instances, 2);
      assert.equal(pool.stats().queuedStreams, 0);
      for (const c of [hot, second, third]) c.close();
    } finally {
      await t.close();
    }
  });
});
