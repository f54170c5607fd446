// runStream: the in-process harness function authors test their handlers with.
import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import { defineStreamFunction, runStream, StreamfnError } from "../src/api/index.js";
import type { StreamContext } from "../src/api/index.js";

/** Fails the test instead of hanging it when a promise never settles. */
function within<T>(p: Promise<T>, ms = 5_000): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`did not settle within ${ms} ms`)), ms);
    }),
  ]);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("runStream", () => {
  it("runs a generator handler over an array and returns its outputs in order, including after the end", async () => {
    const fn = defineStreamFunction<number, unknown>({
      async *handler(events, ctx) {
        let sum = 0;
        for await (const e of events) {
          sum += e;
          yield { e, seq: ctx.event.seq, sum };
        }
        yield { total: sum, endReason: ctx.endReason, streamId: ctx.streamId, fn: ctx.functionName };
      },
    });
    const outputs = await within(runStream(fn, [1, 2, 3]));
    assert.deepEqual(outputs, [
      { e: 1, seq: 1, sum: 1 },
      { e: 2, seq: 2, sum: 3 },
      { e: 3, seq: 3, sum: 6 },
      { total: 6, endReason: "end", streamId: "test-stream", fn: "test" },
    ]);
  });

  it("runs an async-function handler: its return value is the one output", async () => {
    const fn = defineStreamFunction<string, { joined: string }>({
      async handler(events) {
        const parts: string[] = [];
        for await (const e of events) parts.push(e);
        return { joined: parts.join("") };
      },
    });
    assert.deepEqual(await within(runStream(fn, ["a", "b", "c"])), [{ joined: "abc" }]);
    assert.deepEqual(await within(runStream(fn, [])), [{ joined: "" }], "an empty stream still runs the handler");
  });

  it("an async function that returns nothing has no outputs; generators may skip undefined", async () => {
    const quiet = defineStreamFunction({
      async handler(events) {
        for await (const _ of events) {
          // consume
        }
      },
    });
    assert.deepEqual(await within(runStream(quiet, [1, 2])), []);
    const sparse = defineStreamFunction<number, number | undefined>({
      async *handler(events) {
        for await (const e of events) yield e % 2 ? e : undefined;
      },
    });
    assert.deepEqual(await within(runStream(sparse, [1, 2, 3, 4])), [1, 3]);
  });

  it("reports ctx.endReason only once the iterator completed, and takes another reason from options", async () => {
    const seen: (string | undefined)[] = [];
    const fn = defineStreamFunction({
      async handler(events, ctx: StreamContext) {
        for await (const _ of events) seen.push(ctx.endReason);
        return ctx.endReason;
      },
    });
    assert.deepEqual(await within(runStream(fn, [1, 2])), ["end"]);
    assert.deepEqual(seen, [undefined, undefined], "no end reason while events still come");
    assert.deepEqual(await within(runStream(fn, [1], { endReason: "idle", streamId: "s-7" })), ["idle"]);
  });

  it("rejects with exactly what the handler threw", async () => {
    const boom = new RangeError("bad value 3");
    const fn = defineStreamFunction<number, number>({
      async *handler(events) {
        for await (const e of events) {
          if (e === 3) throw boom;
          yield e;
        }
      },
    });
    await assert.rejects(within(runStream(fn, [1, 2, 3, 4])), (err) => err === boom);
    const fnAsync = defineStreamFunction({
      async handler() {
        throw new StreamfnError("INVALID_ENVELOPE", "custom code");
      },
    });
    await assert.rejects(within(runStream(fnAsync, [1])), { code: "INVALID_ENVELOPE", message: "custom code" });
  });

  it("takes an async iterable as input", async () => {
    async function* produce(): AsyncGenerator<number> {
      for (let i = 0; i < 5; i++) {
        await sleep(1);
        yield i;
      }
    }
    const fn = defineStreamFunction<number, number>({
      async *handler(events) {
        for await (const e of events) yield e * 10;
      },
    });
    assert.deepEqual(await within(runStream(fn, produce())), [0, 10, 20, 30, 40]);
  });

  it("rejects with the input's own error when the input iterable fails", async () => {
    const broken = new Error("source broke");
    async function* produce(): AsyncGenerator<number> {
      yield 1;
      throw broken;
    }
    const fn = defineStreamFunction<number, number>({
      async *handler(events) {
        for await (const e of events) yield e;
      },
    });
    await assert.rejects(within(runStream(fn, produce())), (err) => err === broken);
  });

  it("finishes when the handler returns early, even over an endless input, and stops reading it", async () => {
    let produced = 0;
    function* endless(): Generator<number> {
      for (;;) yield produced++;
    }
    const fn = defineStreamFunction<number, number[]>({
      async handler(events) {
        const got: number[] = [];
        for await (const e of events) {
          await sleep(1); // a handler that waits on timers must not be starved by its input
          got.push(e);
          if (got.length === 3) break;
        }
        return got;
      },
    });
    assert.deepEqual(await within(runStream(fn, endless())), [[0, 1, 2]]);
    await sleep(20);
    const after = produced;
    await sleep(20);
    assert.equal(produced, after, "the input is no longer read after the handler finished");
    assert.ok(produced < 1000, `read ${produced} events ahead of a handler that took 3`);
  });

  it("reads a lazy input only as fast as the handler takes it", async () => {
    let produced = 0;
    let taken = 0;
    let maxAhead = 0;
    function* counting(): Generator<number> {
      for (let i = 0; i < 500; i++) {
        produced++;
        maxAhead = Math.max(maxAhead, produced - taken);
        yield i;
      }
    }
    const fn = defineStreamFunction<number, number>({
      async handler(events) {
        let n = 0;
        for await (const _ of events) {
          taken++;
          n++;
          if (n % 50 === 0) await sleep(1);
        }
        return n;
      },
    });
    assert.deepEqual(await within(runStream(fn, counting())), [500]);
    assert.ok(maxAhead <= 128, `the input ran ${maxAhead} events ahead of the handler`);
  });
});
