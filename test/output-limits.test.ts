// maxOutputs and maxOutputBytes: a stream over them fails with its code, seen by its producer;
// the other streams of the function, on the same instance, go on.
import { strict as assert } from "node:assert";
import { after, before, describe, it } from "node:test";
import { fnSource } from "./helpers/contract-util.js";
import { SseClient } from "./helpers/http-client.js";
import { startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";

const many = fnSource(`{
  maxOutputs: 3,
  async *handler(events) { for await (const e of events) for (let i = 0; i < e.count; i++) yield i; },
}`);
const big = fnSource(`{
  maxOutputBytes: 1000,
  idleTimeoutMs: 60000,
  async *handler(events) { for await (const e of events) yield (e.char ?? "x").repeat(e.size); },
}`);
// No limit of its own: the server's defaults apply.
const plain = fnSource(`{ async *handler(events) { for await (const e of events) for (let i = 0; i < e.count; i++) yield i; } }`);
const binary = fnSource(`{
  maxOutputBytes: 64,
  async *handler(events) { for await (const e of events) yield new Uint8Array(e.size); },
}`);

describe("output limits", () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ "many.ts": many, "big.ts": big, "plain.ts": plain, "bin.ts": binary }, { defaults: { maxOutputs: 50 } });
  });
  after(() => t.close());

  it("fails a stream that yields more than maxOutputs with TOO_MANY_OUTPUTS, after delivering that many", async () => {
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/many/streams/m1`);
    const sub = new SseClient(`${t.url}/v1/functions/many/streams/m1/outputs`);
    c.event({ count: 10 });
    const end = await c.waitEnd();
    assert.equal(end.status, "failed");
    assert.deepEqual(end.error, { code: "TOO_MANY_OUTPUTS", message: "the handler produced more than 3 outputs (maxOutputs of many)" });
    assert.equal(end.outputs, 3);
    assert.deepEqual(c.outputs(), [0, 1, 2]);
    // A subscriber sees the same end.
    const subEnd = await sub.waitEnd();
    assert.equal((subEnd.error as { code: string }).code, "TOO_MANY_OUTPUTS");
  });

  it("takes the server-wide default for a function without its own", async () => {
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/plain/streams`);
    c.event({ count: 100 });
    const end = await c.waitEnd();
    assert.equal((end.error as { code: string; message: string }).message, "the handler produced more than 50 outputs (maxOutputs of plain)");
    const ok = await StreamClient.connect(`${t.wsUrl}/v1/functions/plain/streams`);
    ok.event({ count: 50 });
    ok.end();
    assert.equal((await ok.waitEnd()).status, "completed");
  });

  it("fails a stream whose output is over maxOutputBytes with OUTPUT_TOO_LARGE; another stream on the same instance goes on", async () => {
    const good = await StreamClient.connect(`${t.wsUrl}/v1/functions/big/streams/good`);
    good.event({ size: 10 });
    await good.waitFor((r) => r.type === "output");
    const bad = await StreamClient.connect(`${t.wsUrl}/v1/functions/big/streams/bad`);
    bad.event({ size: 10 });
    bad.event({ size: 5000 });
    bad.event({ size: 10 });
    const end = await bad.waitEnd();
    assert.equal(end.status, "failed");
    assert.equal((end.error as { code: string }).code, "OUTPUT_TOO_LARGE");
    assert.match((end.error as { message: string }).message, /^output 2 has 5002 bytes, over the maxOutputBytes \(1000\) of big$/);
    assert.equal(bad.outputs().length, 1, "the oversized output was not delivered");
    const status = await fetch(`${t.url}/v1/status`).then((r) => r.json()) as { functions: { name: string; versions: { instances: unknown[] }[] }[] };
    assert.equal(status.functions.find((f) => f.name === "big")!.versions[0]!.instances.length, 1, "one instance held both streams");
    for (let i = 0; i < 20; i++) good.event({ size: 900 });
    good.end();
    const goodEnd = await good.waitEnd();
    assert.equal(goodEnd.status, "completed");
    assert.equal(good.outputs().length, 21);
  });

  it("counts text in UTF-8 bytes, not characters", async () => {
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/big/streams`);
    c.event({ size: 400, char: "é" }); // 802 bytes as JSON text
    c.event({ size: 600, char: "é" }); // 602 characters, 1202 bytes
    const end = await c.waitEnd();
    assert.equal((end.error as { message: string }).message, "output 2 has 1202 bytes, over the maxOutputBytes (1000) of big");
    assert.equal(c.outputs().length, 1);
  });

  it("counts binary outputs by their length", async () => {
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/bin/streams`);
    c.event({ size: 64 });
    c.event({ size: 65 });
    const end = await c.waitEnd();
    assert.equal((end.error as { code: string; message: string }).message, "output 2 has 65 bytes, over the maxOutputBytes (64) of bin");
    assert.equal(end.outputs, 1);
  });

  it("refuses a bad limit where options are checked", async () => {
    const bad = fnSource(`{ maxOutputs: 0, async *handler(events) { for await (const e of events) yield e; } }`);
    const res = await fetch(`${t.url}/v1/functions/bad`, { method: "PUT", headers: { "content-type": "application/typescript" }, body: bad });
    const body = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(res.status, 422);
    assert.match(body.error.message, /option "maxOutputs" must be an integer >= 1, got 0/);
  });
});
