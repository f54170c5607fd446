// Contract: a failing, stalled, stuck or memory-hungry handler fails its own stream(s) with a
// clear error code, never hangs anything, and the server goes on serving.
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fnSource } from "./helpers/contract-util.js";
import { forEachSandbox, isolatedOnly, notOnCluster, startContractTarget } from "./helpers/contract-target.js";
import type { ContractTarget } from "./helpers/contract-target.js";
import { eventually } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";
import type { Rec } from "./helpers/ws-client.js";

/** Why the inline tier skips the tests of a blocked event loop. */
const kBlocks = "a handler that blocks the loop blocks the server itself: nothing is left to recycle it";

/** The first skip that applies, for a test two conditions may rule out. */
function skipUnless(...options: { skip: string | false }[]): { skip: string | false } {
  return { skip: options.find((o) => o.skip)?.skip ?? false };
}

// Echoes events; an event naming a misdeed makes the handler commit it.
const misbehaving = (options: string): string =>
  fnSource(`{
  ${options}
  async *handler(events, ctx) {
    const keep = [];
    for await (const e of events) {
      if (e === "throw") throw new Error("boom in " + ctx.streamId);
      if (e === "spin") while (true) {}
      if (typeof e === "object" && e && e.yieldThenSpin) { for (const w of [].concat(e.yieldThenSpin)) yield w; while (true) {} }
      if (e === "hog") for (;;) keep.push(Array.from({ length: 10000 }, (_, i) => ({ i, s: "x" + i })));
      if (e === "hang") await new Promise(() => {});
      if (e === "function") yield { f: () => 1 };
      if (e === "bigint") yield { big: 10n };
      if (e === "string") throw "a thrown string";
      if (typeof e === "object" && e && e.sleep) await new Promise((r) => setTimeout(r, e.sleep));
      yield e;
    }
    if (ctx.streamId.startsWith("linger")) await new Promise(() => {});
    yield "done";
  },
}`);

async function open(t: ContractTarget, fn: string, id: string): Promise<StreamClient> {
  return StreamClient.connect(`${t.wsUrl}/v1/functions/${fn}/streams/${id}`);
}

/** The instance a live stream is bound to, from its status. */
async function instanceOf(t: ContractTarget, fn: string, id: string): Promise<number | undefined> {
  return (await t.stream(fn, id))?.instance ?? undefined;
}

async function echoed(c: StreamClient, value: unknown): Promise<void> {
  c.event(value);
  await c.waitFor((r) => r.type === "output" && JSON.stringify(r.data) === JSON.stringify(value));
}

function failedWith(end: Rec, code: string): { code: string; message: string } {
  assert.equal(end.status, "failed", JSON.stringify(end));
  assert.equal(end.reason, "error");
  const error = end.error as { code: string; message: string };
  assert.equal(error.code, code, JSON.stringify(end));
  assert.ok(error.message.length > 0);
  return error;
}

forEachSandbox((sandbox) =>
describe(`contract: failures stay with their stream [${sandbox} sandbox]`, () => {
  let t: ContractTarget;
  before(async () => {
    t = await startContractTarget({
      "thrower.ts": misbehaving("concurrency: 4,"),
      "staller.ts": misbehaving("stallTimeoutMs: 400,"),
      "lingerer.ts": misbehaving("epilogueMs: 200,"),
      "spinner.ts": misbehaving("concurrency: 4, unresponsiveMs: 200,"),
      "hog.ts": misbehaving("concurrency: 4, memoryMb: 16, unresponsiveMs: 30000,"),
      "single.ts": misbehaving("concurrency: 1, maxInstances: 1, unresponsiveMs: 200,"),
      "fragile.ts": fnSource(
        `{
          async *handler(events) {
            for await (const e of events) yield e;
          },
        }`,
        // Loads in the deploy-time probe; fails to load in instances once the flag file exists
        // next to the function (bundles live in <functionsDir>/.streamfn/bundles/).
        `import { existsSync } from "node:fs";
         if (existsSync(new URL("../../fragile.flag", import.meta.url))) throw new Error("cannot load right now");`,
      ),
    }, { sandbox });
  });
  after(() => t.close());

  it("a throwing handler fails only its stream; another stream on the same instance completes", notOnCluster("instance ids and cold starts live in the worker; the gateway's status does not show them"), async () => {
    const a = await open(t, "thrower", "throw-a");
    const b = await open(t, "thrower", "throw-b");
    await echoed(a, "x");
    await echoed(b, "x");
    const instance = await instanceOf(t, "thrower", "throw-a");
    assert.ok(instance !== undefined);
    assert.equal(await instanceOf(t, "thrower", "throw-b"), instance, "both streams share one instance");

    a.event("throw");
    const error = failedWith(await a.waitEnd(), "HANDLER_ERROR");
    assert.match(error.message, /boom in throw-a/);
    assert.equal(await a.waitClose(), 1000);

    await echoed(b, "y");
    b.end();
    const end = await b.waitEnd();
    assert.equal(end.status, "completed");
    assert.deepEqual(b.outputs(), ["x", "y", "done"]);

    // The instance keeps serving: a new stream lands on it, no new cold start.
    const c = await open(t, "thrower", "throw-c");
    assert.equal(await instanceOf(t, "thrower", "throw-c"), instance);
    await echoed(c, "z");
    c.end();
    assert.equal((await c.waitEnd()).status, "completed");
    assert.equal((await t.current("thrower")).coldStarts, 1);
  });

  it("an output that cannot be sent fails its stream with OUTPUT_NOT_SERIALIZABLE; neighbours go on", async () => {
    const a = await open(t, "thrower", "out-fn");
    const b = await open(t, "thrower", "out-bigint");
    const c = await open(t, "thrower", "out-neighbour");
    await echoed(c, "x");
    a.event("function"); // cannot cross the thread boundary
    b.event("bigint"); // crosses it, but has no JSON form
    c.event("y");
    const [endA, endB] = await Promise.all([a.waitEnd(), b.waitEnd()]);
    failedWith(endA, "OUTPUT_NOT_SERIALIZABLE");
    const errB = failedWith(endB, "OUTPUT_NOT_SERIALIZABLE");
    assert.match(errB.message, /output 1 is not JSON-serializable/);
    await c.waitFor((r) => r.type === "output" && r.data === "y");
    c.end();
    assert.equal((await c.waitEnd()).status, "completed");
  });

  it("a handler that throws a non-Error fails with HANDLER_ERROR carrying its text", async () => {
    const c = await open(t, "thrower", "throws-string");
    c.event("string");
    const error = failedWith(await c.waitEnd(), "HANDLER_ERROR");
    assert.equal(error.message, "a thrown string");
  });

  it("a handler that stops pulling while events wait fails with HANDLER_STALLED", async () => {
    const c = await open(t, "staller", "stall-1");
    c.event("hang");
    c.event("waiting");
    const error = failedWith(await c.waitEnd(), "HANDLER_STALLED");
    assert.match(error.message, /stallTimeoutMs/);
  });

  it("a slow handler that keeps pulling is not stalled, however long the stream takes", async () => {
    const c = await open(t, "staller", "slow-but-moving");
    // Each event takes a tenth of the stall timeout; together they take longer than it.
    for (let i = 0; i < 12; i++) c.event({ sleep: 40 });
    c.end();
    const end = await c.waitEnd(10_000);
    assert.equal(end.status, "completed", JSON.stringify(end));
    assert.equal(c.outputs().length, 13);
  });

  it("an idle handler waiting for its next event is not stalled", async () => {
    const c = await open(t, "staller", "just-waiting");
    await echoed(c, "one");
    await new Promise((r) => setTimeout(r, 600)); // longer than stallTimeoutMs, but nothing waits
    await echoed(c, "two");
    c.end();
    assert.equal((await c.waitEnd()).status, "completed");
  });

  it("a handler that never finishes after its input ended fails with EPILOGUE_TIMEOUT", async () => {
    const c = await open(t, "lingerer", "linger-1");
    await echoed(c, "a");
    c.end();
    const error = failedWith(await c.waitEnd(), "EPILOGUE_TIMEOUT");
    assert.match(error.message, /epilogueMs/);
    assert.deepEqual(c.outputs(), ["a"]);
  });

  it("a CPU-stuck handler gets its instance recycled; its other streams fail clearly; new streams work", skipUnless(notOnCluster("instance ids live in the worker; the gateway's status does not show them"), isolatedOnly(sandbox, kBlocks)), async () => {
    const stuck = await open(t, "spinner", "spin-a");
    const neighbour = await open(t, "spinner", "spin-b");
    await echoed(stuck, "x");
    await echoed(neighbour, "x");
    const instance = await instanceOf(t, "spinner", "spin-a");
    assert.equal(await instanceOf(t, "spinner", "spin-b"), instance);

    stuck.event("spin");
    const [endA, endB] = await Promise.all([stuck.waitEnd(10_000), neighbour.waitEnd(10_000)]);
    failedWith(endA, "INSTANCE_UNRESPONSIVE");
    const error = failedWith(endB, "INSTANCE_UNRESPONSIVE");
    assert.match(error.message, /did not respond/);

    // A fresh instance serves the next stream.
    const fresh = await open(t, "spinner", "spin-c");
    await echoed(fresh, "after");
    assert.notEqual(await instanceOf(t, "spinner", "spin-c"), instance);
    fresh.end();
    assert.equal((await fresh.waitEnd()).status, "completed");
    await eventually(
      async () => !(await t.current("spinner")).instances.some((i) => i.id === instance),
      5_000,
      "the stuck instance to be gone",
    );
  });

  it("a handler that runs out of memory fails its instance's streams with INSTANCE_OUT_OF_MEMORY; the server goes on", skipUnless(notOnCluster("instance ids live in the worker; the gateway's status does not show them"), isolatedOnly(sandbox, "the function shares the server's heap: there is no instance heap limit to hit")), async () => {
    const hog = await open(t, "hog", "hog-a");
    const neighbour = await open(t, "hog", "hog-b");
    await echoed(hog, "x");
    await echoed(neighbour, "x");
    const instance = await instanceOf(t, "hog", "hog-a");
    assert.equal(await instanceOf(t, "hog", "hog-b"), instance);

    hog.event("hog");
    const [endA, endB] = await Promise.all([hog.waitEnd(20_000), neighbour.waitEnd(20_000)]);
    failedWith(endA, "INSTANCE_OUT_OF_MEMORY");
    failedWith(endB, "INSTANCE_OUT_OF_MEMORY");

    const fresh = await open(t, "hog", "hog-c");
    await echoed(fresh, "after");
    assert.notEqual(await instanceOf(t, "hog", "hog-c"), instance);
    fresh.end();
    assert.equal((await fresh.waitEnd()).status, "completed");
    // Other functions never noticed.
    const other = await open(t, "thrower", "after-oom");
    await echoed(other, 1);
    other.end();
    assert.equal((await other.waitEnd()).status, "completed");
  });

  it("streams waiting for the one instance of a function proceed on a fresh instance after it is recycled", isolatedOnly(sandbox, kBlocks), async () => {
    const stuck = await open(t, "single", "single-a");
    await echoed(stuck, "x");
    const waiting = await open(t, "single", "single-b");
    waiting.event("queued");
    await eventually(async () => (await t.stream("single", "single-b"))?.events === 1, 5_000, "the queued event");
    assert.equal((await t.stream("single", "single-b"))!.state, "waiting");
    stuck.event("spin");
    failedWith(await stuck.waitEnd(10_000), "INSTANCE_UNRESPONSIVE");
    await waiting.waitFor((r) => r.type === "output" && r.data === "queued", 10_000);
    waiting.end();
    const end = await waiting.waitEnd();
    assert.equal(end.status, "completed");
    assert.deepEqual(waiting.outputs(), ["queued", "done"]);
  });

  it("outputs a handler yielded before it blocked its instance reach the producer, numbered, before the error", isolatedOnly(sandbox, kBlocks), async () => {
    // Stream b waits for the one slot with "a" and "spin" queued: once a's stream ends they go to
    // the instance in one batch, so the handler yields "a" and spins in the same turn.
    const holder = await open(t, "single", "lossless-a");
    await echoed(holder, "x");
    const c = await open(t, "single", "lossless-b");
    c.event("a");
    c.event("spin");
    await eventually(async () => (await t.stream("single", "lossless-b"))?.events === 2, 5_000, "both events queued");
    holder.end();
    assert.equal((await holder.waitEnd()).status, "completed");
    const end = await c.waitEnd(10_000);
    failedWith(end, "INSTANCE_UNRESPONSIVE");
    const outputs = c.records.filter((r) => r.type === "output");
    assert.deepEqual(outputs.map((r) => [r.n, r.data]), [[1, "a"]]);
    assert.ok(c.records.indexOf(outputs[0]!) < c.records.indexOf(end), "the output comes before the end");
    assert.equal(end.outputs, 1);
    const status = await t.stream("single", "lossless-b");
    assert.equal(status?.outputs, 1);
  });

  it("outputs yielded just before a CPU loop in the same step reach the producer, all of them", isolatedOnly(sandbox, kBlocks), async () => {
    const c = await open(t, "single", "lossless-c");
    c.event({ yieldThenSpin: ["first", "second", "last words"] });
    const end = await c.waitEnd(10_000);
    failedWith(end, "INSTANCE_UNRESPONSIVE");
    assert.deepEqual(c.outputs(), ["first", "second", "last words"]);
    assert.equal(end.outputs, 3);
  });

  it("an instance that fails to load fails its streams with FUNCTION_LOAD_FAILED; the next stream tries again", isolatedOnly(sandbox, "the module is evaluated once per server process (its load check included), so a later instance does not load it again; test/inline-tier.test.ts covers a failed inline load"), async () => {
    const flag = join(t.functionsDir, "fragile.flag");
    writeFileSync(flag, "");
    try {
      const c = await open(t, "fragile", "fragile-a");
      c.event("a");
      const error = failedWith(await c.waitEnd(10_000), "FUNCTION_LOAD_FAILED");
      assert.match(error.message, /cannot load right now/);
    } finally {
      unlinkSync(flag);
    }
    await eventually(async () => (await t.current("fragile")).instances.length === 0, 5_000, "the failed instance to go");
    const ok = await open(t, "fragile", "fragile-b");
    await echoed(ok, "b");
    ok.end();
    assert.equal((await ok.waitEnd()).status, "completed");
  });
}));

forEachSandbox((sandbox) =>
describe(`contract: watchdogs count handler time, not an instance's cold start [${sandbox} sandbox]`, () => {
  let t: ContractTarget;
  before(async () => {
    // Every instance of this function takes 500 ms to load: longer than its stall and epilogue limits.
    const slowStart = fnSource(
      `{
        stallTimeoutMs: 150,
        epilogueMs: 150,
        keepAliveMs: 0,
        async *handler(events) {
          let n = 0;
          for await (const _ of events) n++;
          yield { n };
        },
      }`,
      `await new Promise((r) => setTimeout(r, 500));`,
    );
    t = await startContractTarget({ "slowstart.ts": slowStart }, { sandbox });
  });
  after(() => t.close());

  it("events waiting for a starting instance are not a stalled handler", async () => {
    await eventually(async () => (await t.current("slowstart")).instances.length === 0, 5_000, "no warm instance");
    const c = await open(t, "slowstart", "cold-events");
    for (let i = 0; i < 5; i++) c.event(i);
    c.end();
    const end = await c.waitEnd(10_000);
    assert.equal(end.status, "completed", JSON.stringify(end));
    assert.deepEqual(c.outputs(), [{ n: 5 }]);
  });

  it("an input that ends before the instance is ready does not start the epilogue clock", async () => {
    await eventually(async () => (await t.current("slowstart")).instances.length === 0, 5_000, "no warm instance");
    const c = await open(t, "slowstart", "cold-empty");
    c.end();
    const end = await c.waitEnd(10_000);
    assert.equal(end.status, "completed", JSON.stringify(end));
    assert.deepEqual(c.outputs(), [{ n: 0 }]);
  });
}));
