import { strict as assert } from "node:assert";
import { after, before, describe, it } from "node:test";
import { startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";
import type { ServerStatus } from "../src/server/status.js";

const hold = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  concurrency: 1,
  maxInstances: 1,
  async *handler(events) {
    for await (const e of events) yield e;
  },
});`;

const warm = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  minInstances: 1,
  concurrency: 4,
  async handler(events) {
    let n = 0;
    for await (const _ of events) n++;
    return n;
  },
});`;

async function status(t: TestServer): Promise<ServerStatus> {
  const res = await fetch(`${t.url}/v1/status`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
  return (await res.json()) as ServerStatus;
}

describe("GET /v1/status", () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ "hold.ts": hold, "warm.ts": warm });
  });
  after(() => t.close());

  it("reports the process and every function with its current version", async () => {
    const s = await status(t);
    assert.ok(Date.parse(s.startedAt) <= Date.now());
    assert.ok(s.process.uptimeSeconds >= 0);
    assert.ok(s.process.rssBytes > 0);
    assert.ok(s.process.heapUsedBytes > 0);
    assert.equal(s.process.pid, process.pid);
    assert.equal(s.watching, false);
    assert.equal(s.liveStreams, 0);
    assert.equal(s.queuedStreams, 0);
    assert.deepEqual(s.functions.map((f) => f.name), ["hold", "warm"]);

    const h = s.functions.find((f) => f.name === "hold")!;
    assert.equal(h.version, t.server.registry.current("hold")!.version);
    assert.equal(h.options?.concurrency, 1);
    assert.match(h.file, /hold\.ts$/);
    assert.equal(h.versions.length, 1);
    assert.equal(h.versions[0]!.role, "current");
    assert.equal(h.versions[0]!.version, h.version);
    assert.deepEqual(h.versions[0]!.instances, []);
    assert.deepEqual(h.versions[0]!.slots, { inUse: 0, total: 0 });
    assert.equal(h.coldStarts, 0);

    // minInstances are started (and counted as cold starts) at deploy time.
    const w = s.functions.find((f) => f.name === "warm")!;
    assert.equal(w.coldStarts, 1);
    const [instance] = w.versions[0]!.instances;
    assert.equal(instance!.state, "ready");
    assert.equal(instance!.streams, 0);
    assert.equal(instance!.slots, 4);
    assert.ok(typeof instance!.coldStartMs === "number" && instance!.coldStartMs > 0);
    assert.deepEqual(w.versions[0]!.slots, { inUse: 0, total: 4 });
  });

  it("shows running and queued streams, slots and instances while streams are open", async () => {
    const a = await StreamClient.connect(`${t.wsUrl}/v1/functions/hold/streams/a`);
    a.event(1);
    await a.waitFor((r) => r.type === "output");
    const b = await StreamClient.connect(`${t.wsUrl}/v1/functions/hold/streams/b`);

    const s = await status(t);
    assert.equal(s.liveStreams, 2);
    assert.equal(s.queuedStreams, 1);
    const h = s.functions.find((f) => f.name === "hold")!;
    assert.equal(h.liveStreams, 2);
    assert.equal(h.queuedStreams, 1);
    assert.equal(h.coldStarts, 1);
    const v = h.versions[0]!;
    assert.equal(v.liveStreams, 2);
    assert.equal(v.queuedStreams, 1);
    assert.equal(v.coldStarts, 1);
    assert.deepEqual(v.slots, { inUse: 1, total: 1 });
    assert.equal(v.instances.length, 1);
    assert.equal(v.instances[0]!.state, "ready");
    assert.equal(v.instances[0]!.streams, 1);
    assert.ok(v.instances[0]!.coldStartMs! > 0);

    a.end();
    await a.waitEnd();
    b.end();
    await b.waitEnd();
    const later = await status(t);
    assert.equal(later.liveStreams, 0);
    assert.equal(later.functions.find((f) => f.name === "hold")!.versions[0]!.slots.inUse, 0);
  });
});
