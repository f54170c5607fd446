// Shutdown of the real binary: SIGTERM ends every stream's input with reason `shutdown`, the
// handlers' code after their loop runs and its outputs reach the producers, new streams are
// refused, a handler that ignores the end is failed once the grace period is over, and the
// process exits.
import { strict as assert } from "node:assert";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fnSource, refused } from "./helpers/contract-util.js";
import { call } from "./helpers/http-client.js";
import { serveBinary } from "./helpers/processes.js";
import type { Background } from "./helpers/processes.js";
import { eventually } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";


const summarise = fnSource(`{
  async *handler(events, ctx) {
    let n = 0;
    for await (const e of events) n += e;
    yield { sum: n, endReason: ctx.endReason };
  },
}`);

// Leaves its loop at the end, then never finishes (its epilogue limit is longer than the grace).
const stubborn = fnSource(`{
  epilogueMs: 600000,
  async *handler(events) {
    for await (const _ of events) {}
    await new Promise(() => {});
  },
}`);

function serve(dir: string, graceMs: number): Promise<{ proc: Background; url: string }> {
  return serveBinary(dir, ["--grace-ms", String(graceMs)]);
}

async function eventsTaken(url: string, fn: string, id: string, n: number): Promise<void> {
  await eventually(async () => {
    const r = await call(`${url}/v1/functions/${fn}/streams/${id}`);
    return r.status === 200 && (r.body as { events?: number }).events === n;
  }, 10_000, `${fn}/${id} to take ${n} events`);
}

describe("shutdown (SIGTERM to streamfn serve)", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "streamfn-shutdown-"));
    await writeFile(join(dir, "summarise.ts"), summarise);
    await writeFile(join(dir, "stubborn.ts"), stubborn);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it("runs every handler's epilogue, delivers its summary and an end record with reason shutdown, refuses new streams, fails what overruns the grace with SHUTDOWN_TIMEOUT and exits 0", async () => {
    const { proc, url } = await serve(dir, 3_000);
    try {
      const ws = url.replace(/^http/, "ws");
      const summary = await StreamClient.connect(`${ws}/v1/functions/summarise/streams/s1`);
      for (const v of [1, 2, 3]) summary.event(v);
      const holdout = await StreamClient.connect(`${ws}/v1/functions/stubborn/streams/h1`);
      holdout.event(1);
      await eventsTaken(url, "summarise", "s1", 3);
      await eventsTaken(url, "stubborn", "h1", 1);

      process.kill(proc.child.pid!, "SIGTERM");

      const end = await summary.waitEnd(10_000);
      assert.deepEqual(summary.outputs(), [{ sum: 6, endReason: "shutdown" }]);
      assert.equal(end.status, "completed", JSON.stringify(end));
      assert.equal(end.reason, "shutdown");
      assert.equal(end.outputs, 1);

      // The stubborn handler holds the shutdown open: meanwhile new streams are refused.
      const r = await refused(`${ws}/v1/functions/summarise/streams/late`);
      assert.equal(r.status, 503);
      assert.equal(r.body.error.code, "SHUTTING_DOWN");
      const health = await call(`${url}/healthz`);
      assert.equal(health.status, 503);

      const failed = await holdout.waitEnd(15_000);
      assert.equal(failed.status, "failed");
      assert.equal((failed.error as { code: string }).code, "SHUTDOWN_TIMEOUT", JSON.stringify(failed));
      assert.match((failed.error as { message: string }).message, /grace period \(3000 ms\)/);

      await proc.exited();
      assert.equal(proc.child.exitCode, 0, proc.output);
      assert.match(proc.output, /SIGTERM: ending every stream's input; handlers have up to 3000 ms to finish/);
    } finally {
      await proc.stop();
    }
  });

  it("exits without waiting out the grace period when no stream is running", { timeout: 30_000 }, async () => {
    const { proc } = await serve(dir, 60_000);
    try {
      process.kill(proc.child.pid!, "SIGTERM");
      await proc.exited();
      assert.equal(proc.child.exitCode, 0, proc.output);
    } finally {
      await proc.stop();
    }
  });
});
