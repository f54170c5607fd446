// At start-up the functions of a directory are checked together in one thread: every good one
// still deploys with its own options, and a bad one fails as it would when checked alone,
// whatever the others do while loading.
import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import { startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";

const good = (concurrency: number): string => `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({ concurrency: ${concurrency}, async *handler(events) { for await (const e of events) yield e; } });`;

const bad: Record<string, string> = {
  "throws.ts": `import { defineStreamFunction } from "streamfn";
throw new Error("boom at load");
export default defineStreamFunction({ async *handler() {} });`,
  "exits.ts": `import { defineStreamFunction } from "streamfn";
process.exit(3);
export default defineStreamFunction({ async *handler() {} });`,
  "notfn.ts": `export default { handler: 42 };`,
  "badopts.ts": `import { defineStreamFunction } from "streamfn";
export default { ...defineStreamFunction({ async *handler() {} }), options: { concurrency: -1 } };`,
};

function failure(t: TestServer, fn: string): string {
  const line = t.logs.find((r) => r.msg === "deploy failed" && r.fn === fn);
  assert.ok(line, `${fn} refused: ${t.logText()}`);
  return `${String(line.code)}: ${String(line.message)}`;
}

describe("start-up checks", () => {
  it("deploy every good function with its options, and fail each bad one as alone", async () => {
    const t = await startTestServer({ "a.ts": good(2), "b.ts": good(5), "c.ts": good(7), ...bad });
    try {
      for (const [fn, c] of [["a", 2], ["b", 5], ["c", 7]] as const) {
        assert.equal(t.server.registry.current(fn)?.options.concurrency, c, `${fn}: ${t.logText()}`);
        const s = await StreamClient.connect(`${t.wsUrl}/v1/functions/${fn}/streams`);
        s.event(fn);
        s.end();
        assert.equal((await s.waitEnd()).status, "completed");
        assert.deepEqual(s.outputs(), [fn]);
      }
      for (const file of Object.keys(bad)) {
        const fn = file.replace(/\.ts$/, "");
        assert.equal(t.server.registry.current(fn), undefined);
        const alone = await startTestServer({ [file]: bad[file]! });
        try {
          assert.equal(failure(t, fn).replaceAll(t.dir, "DIR"), failure(alone, fn).replaceAll(alone.dir, "DIR"));
        } finally {
          await alone.close();
        }
      }
      assert.match(failure(t, "throws"), /boom at load/);
    } finally {
      await t.close();
    }
  });
});
