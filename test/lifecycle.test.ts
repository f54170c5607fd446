import { strict as assert } from "node:assert";
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { WebSocket } from "ws";
import { eventually, startTestServer } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";

const versioned = (v: number): string => `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  concurrency: 1,
  maxInstances: 1,
  async *handler(events) {
    for await (const e of events) yield { v: ${v}, e };
  },
});`;

describe("stream lifecycle across connections and versions", () => {
  it("cuts off a WebSocket peer that stops answering pings, ending its stream as disconnect", async () => {
    const t = await startTestServer({ "echo.ts": versioned(1) }, { pingIntervalMs: 100 });
    try {
      // autoPong: false plays a client whose machine vanished without closing its socket.
      const ws = new WebSocket(`${t.wsUrl}/v1/functions/echo/streams/silent`, { autoPong: false });
      await new Promise((resolve, reject) => {
        ws.once("open", resolve);
        ws.once("error", reject);
      });
      ws.send(JSON.stringify({ data: 1 }));
      const ended = await eventually(() => t.server.router.ended("echo", "silent"), 5_000, "the silent stream to end");
      assert.equal(ended.reason, "disconnect");
      assert.equal(ended.status, "completed");
      assert.equal(ended.events, 1);
    } finally {
      await t.close();
    }
  });

  it("keeps a peer that answers pings connected", async () => {
    const t = await startTestServer({ "echo.ts": versioned(1) }, { pingIntervalMs: 50 });
    try {
      const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/echo/streams/chatty`);
      await new Promise((r) => setTimeout(r, 400));
      c.event("still here");
      c.end();
      const end = await c.waitEnd();
      assert.equal(end.reason, "end");
      assert.deepEqual(c.outputs(), [{ v: 1, e: "still here" }]);
    } finally {
      await t.close();
    }
  });

  it("moves a stream waiting for a slot to the new version when its own is replaced", async () => {
    const t = await startTestServer({ "echo.ts": versioned(1) }, { watch: true });
    try {
      const a = await StreamClient.connect(`${t.wsUrl}/v1/functions/echo/streams/holder`);
      a.event("a1");
      await a.waitFor((r) => r.type === "output");
      // One slot in all: this stream waits.
      const b = await StreamClient.connect(`${t.wsUrl}/v1/functions/echo/streams/waiter`);
      b.event("b1");
      await eventually(() => t.server.router.get("echo", "waiter")?.state === "waiting", 5_000, "b to wait");
      const v1Pool = t.server.registry.current("echo")!;
      const v1 = v1Pool.version;
      assert.ok(existsSync(v1Pool.bundlePath));
      await writeFile(join(t.dir, "echo.ts"), versioned(2));
      await eventually(() => t.server.registry.current("echo")?.version !== v1, 15_000, "the new version");
      // b was not refused: it runs on the new version's instance while a finishes on v1.
      const out = await b.waitFor((r) => r.type === "output", 10_000);
      assert.deepEqual(out.data, { v: 2, e: "b1" });
      b.end();
      assert.equal((await b.waitEnd()).status, "completed");
      a.event("a2");
      a.end();
      assert.equal((await a.waitEnd()).status, "completed");
      assert.deepEqual(a.outputs(), [{ v: 1, e: "a1" }, { v: 1, e: "a2" }]);
      // Once v1 has drained, its bundle is cleaned up; v2's stays.
      await eventually(() => !existsSync(v1Pool.bundlePath), 10_000, "the old bundle to be removed");
      assert.ok(existsSync(t.server.registry.current("echo")!.bundlePath));
    } finally {
      await t.close();
    }
  });
});
