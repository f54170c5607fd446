import { strict as assert } from "node:assert";
import { after, before, describe, it } from "node:test";
import { startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";

const isolated = `
import { defineStreamFunction } from "streamfn";
import { writeFileSync } from "node:fs";
export default defineStreamFunction({
  sandbox: "process",
  concurrency: 4,
  unresponsiveMs: 300,
  async *handler(events) {
    for await (const e of events) {
      if (e instanceof Uint8Array) { yield { bytes: Array.from(e) }; continue; }
      if (e === "pid") yield { pid: process.pid };
      else if (e === "write") writeFileSync("/tmp/streamfn-sandbox-escape.txt", "x");
      else if (e === "spin") { for (;;) {} }
      else yield { echo: e };
    }
  },
});`;

describe("process sandbox", () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ "isolated.ts": isolated });
  });
  after(() => t.close());

  it("runs the handler in a separate process, with JSON and binary events", async () => {
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/isolated/streams`);
    c.event("pid");
    c.event({ a: 1 });
    c.binary(new Uint8Array([1, 2, 250]));
    c.end();
    const end = await c.waitEnd(10_000);
    assert.equal(end.status, "completed");
    const [pid, echo, bytes] = c.outputs() as [{ pid: number }, unknown, unknown];
    assert.equal(typeof pid.pid, "number");
    assert.notEqual(pid.pid, process.pid, "not the server's process");
    assert.deepEqual(echo, { echo: { a: 1 } });
    assert.deepEqual(bytes, { bytes: [1, 2, 250] });
  });

  it("denies file writes to the handler; the instance goes on serving", async () => {
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/isolated/streams`);
    c.event("write");
    const end = await c.waitEnd(10_000);
    assert.equal(end.status, "failed");
    assert.equal((end.error as { code: string }).code, "SANDBOX_ACCESS_DENIED");
    assert.match((end.error as { message: string }).message, /denied FileSystemWrite of \/tmp\/streamfn-sandbox-escape\.txt/);
    const d = await StreamClient.connect(`${t.wsUrl}/v1/functions/isolated/streams`);
    d.event("after");
    d.end();
    assert.equal((await d.waitEnd(10_000)).status, "completed");
    assert.deepEqual(d.outputs(), [{ echo: "after" }]);
  });

  it("kills a process stuck in a CPU loop and fails its streams instead of hanging", async () => {
    const stuck = await StreamClient.connect(`${t.wsUrl}/v1/functions/isolated/streams/stuck`);
    const neighbour = await StreamClient.connect(`${t.wsUrl}/v1/functions/isolated/streams/neighbour`);
    neighbour.event("hi");
    await neighbour.waitFor((r) => r.type === "output", 10_000);
    stuck.event("spin");
    const [a, b] = await Promise.all([stuck.waitEnd(15_000), neighbour.waitEnd(15_000)]);
    for (const end of [a, b]) {
      assert.equal(end.status, "failed");
      assert.equal((end.error as { code: string }).code, "INSTANCE_UNRESPONSIVE");
    }
    const fresh = await StreamClient.connect(`${t.wsUrl}/v1/functions/isolated/streams`);
    fresh.event("again");
    fresh.end();
    assert.equal((await fresh.waitEnd(10_000)).status, "completed");
  });
});
