// examples/functions/sessionizer.ts: one user's clickstream split into sessions on event-time gaps.
import { strict as assert } from "node:assert";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { runStream } from "../src/api/index.js";
import type { StreamFunction } from "../src/api/index.js";
import { kExampleFunctionsDir, loadExampleFunction, readExampleData } from "./helpers/example-function.js";
import { startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";

interface Session {
  type: "session";
  user: string | null;
  session: number;
  start: number | null;
  end: number | null;
  durationMs: number | null;
  clicks: number;
  distinctPages: number;
  entry: string;
  exit: string;
  bounce: boolean;
  stage: "view" | "add" | "checkout";
  converted: boolean;
  late: number;
  untimed: number;
  closedBy: string;
}
interface Summary {
  type: "summary";
  user: string | null;
  sessions: number;
  clicks: number;
  converted: number;
  skipped: number;
  endReason: string;
}
type Output = Session | Summary;

const min = 60_000;
const T0 = 1_764_662_400_000;
const click = (page: string, minutes: number | undefined, action?: string): Record<string, unknown> => ({
  page,
  ...(minutes === undefined ? {} : { t: T0 + minutes * min }),
  ...(action === undefined ? {} : { action }),
});

async function capturingWarnings<T>(body: () => Promise<T>): Promise<{ result: T; warnings: string[] }> {
  const warnings: string[] = [];
  const original = console.warn;
  console.warn = (...args: unknown[]) => void warnings.push(args.map(String).join(" "));
  try {
    return { result: await body(), warnings };
  } finally {
    console.warn = original;
  }
}

const sessionsOf = (outputs: Output[]): Session[] => outputs.filter((o): o is Session => o.type === "session");
const summaryOf = (outputs: Output[]): Summary => {
  const last = outputs.at(-1);
  assert.equal(last?.type, "summary", `the last output is the summary: ${JSON.stringify(outputs)}`);
  return last as Summary;
};

describe("sessionizer example", () => {
  let fn: StreamFunction;
  const run = async (events: unknown[], endReason: "end" | "idle" = "end"): Promise<Output[]> =>
    (await runStream(fn, events, { endReason })) as Output[];
  before(async () => {
    fn = await loadExampleFunction("sessionizer");
  });

  it("splits on an event-time gap longer than 30 minutes and flushes the open session at the end", async () => {
    const outputs = await run([
      click("/", 0),
      click("/search", 10),
      click("/product/1", 40), // exactly 30 min after the last click: the same session
      click("/", 71), // 31 min: a new one
      click("/about", 75),
    ]);
    assert.deepEqual(outputs, [
      { type: "session", user: null, session: 1, start: T0, end: T0 + 40 * min, durationMs: 40 * min, clicks: 3, distinctPages: 3, entry: "/", exit: "/product/1", bounce: false, stage: "view", converted: false, late: 0, untimed: 0, closedBy: "gap" },
      { type: "session", user: null, session: 2, start: T0 + 71 * min, end: T0 + 75 * min, durationMs: 4 * min, clicks: 2, distinctPages: 2, entry: "/", exit: "/about", bounce: false, stage: "view", converted: false, late: 0, untimed: 0, closedBy: "end" },
      { type: "summary", user: null, sessions: 2, clicks: 5, converted: 0, skipped: 0, endReason: "end" },
    ]);
  });

  it("closes the last session with the stream's end reason", async () => {
    const outputs = await run([click("/", 0), click("/x", 1)], "idle");
    assert.deepEqual(sessionsOf(outputs).map((s) => s.closedBy), ["idle"]);
    assert.equal(summaryOf(outputs).endReason, "idle");
  });

  it("marks a one-click session as a bounce, and a reload of the same page as none", async () => {
    const [single, reload] = sessionsOf(await run([click("/landing", 0), click("/landing", 60), click("/landing", 61)]));
    assert.deepEqual([single!.bounce, single!.clicks, single!.durationMs, single!.entry, single!.exit], [true, 1, 0, "/landing", "/landing"]);
    assert.deepEqual([reload!.bounce, reload!.clicks, reload!.distinctPages], [false, 2, 1]);
  });

  it("tracks the furthest funnel stage a session reached; checkout converts", async () => {
    const outputs = await run([
      { user: "u-1" },
      click("/p/1", 0),
      click("/p/1", 1, "add"),
      click("/p/2", 2), // a later view does not undo the add
      click("/p/1", 100),
      click("/cart", 101, "add"),
      click("/checkout", 102, "checkout"),
      click("/thanks", 103),
    ]);
    const sessions = sessionsOf(outputs);
    assert.deepEqual(sessions.map((s) => [s.stage, s.converted]), [
      ["add", false],
      ["checkout", true],
    ]);
    assert.deepEqual(sessions.map((s) => s.user), ["u-1", "u-1"]);
    assert.deepEqual(summaryOf(outputs), { type: "summary", user: "u-1", sessions: 2, clicks: 7, converted: 1, skipped: 0, endReason: "end" });
  });

  it("measures the gap from the latest time seen, so a late click neither splits a session nor moves its end or exit", async () => {
    const outputs = await run([
      click("/a", 0),
      click("/b", 20),
      click("/late", 2), // arrives after /b
      click("/c", 45), // 25 min after the latest click (/b), though 43 after the previous arrival
      click("/older", -100), // far older than the gap: still the open session's, which cannot reopen closed ones
    ]);
    const sessions = sessionsOf(outputs);
    assert.equal(sessions.length, 1, JSON.stringify(sessions));
    assert.deepEqual(
      [sessions[0]!.clicks, sessions[0]!.late, sessions[0]!.start, sessions[0]!.end, sessions[0]!.exit],
      [5, 2, T0, T0 + 45 * min, "/c"],
    );
  });

  it("puts clicks without a usable time into the open session without moving its clock", async () => {
    const outputs = await run([
      click("/first", undefined), // the stream's start has no time yet
      click("/a", 5),
      { page: "/b", t: "yesterday" },
      click("/c", 50), // a gap from /a: the untimed /b did not move the clock
    ]);
    const sessions = sessionsOf(outputs);
    assert.deepEqual(
      sessions.map((s) => [s.entry, s.exit, s.clicks, s.untimed, s.start, s.end]),
      [
        ["/first", "/b", 3, 2, T0 + 5 * min, T0 + 5 * min],
        ["/c", "/c", 1, 0, T0 + 50 * min, T0 + 50 * min],
      ],
    );
    const [untimedOnly] = sessionsOf(await run([click("/x", undefined)]));
    assert.deepEqual([untimedOnly!.start, untimedOnly!.end, untimedOnly!.durationMs], [null, null, null]);
  });

  it("skips clicks without a page and counts unknown actions as views, with warnings", async () => {
    const { result, warnings } = await capturingWarnings(() =>
      run([click("/", 0), { t: T0 }, { page: "" }, "click", null, click("/x", 1, "wishlist")]),
    );
    assert.deepEqual(sessionsOf(result).map((s) => [s.clicks, s.stage]), [[2, "view"]]);
    assert.equal(summaryOf(result).skipped, 4);
    assert.equal(warnings.length, 5, warnings.join("\n"));
    assert.match(warnings[0]!, /event 2: a click needs a non-empty "page" \(\{"t":1764662400000\}\); skipped/);
    assert.match(warnings[4]!, /event 6: unknown action "wishlist"; counted as a view/);
  });

  it("takes the gap from a header event, keeping the default for an invalid one", async () => {
    const clicks = [click("/", 0), click("/a", 6), click("/b", 20)];
    assert.equal(sessionsOf(await run(clicks)).length, 1);
    assert.equal(sessionsOf(await run([{ gapMs: 5 * min }, ...clicks])).length, 3);
    const { result, warnings } = await capturingWarnings(() => run([{ gapMs: "5m" }, ...clicks]));
    assert.equal(sessionsOf(result).length, 1);
    assert.match(warnings.join("\n"), /gapMs must be a positive integer, got "5m"; using 1800000/);
  });

  it("yields only a summary for an empty stream", async () => {
    assert.deepEqual(await run([]), [{ type: "summary", user: null, sessions: 0, clicks: 0, converted: 0, skipped: 0, endReason: "end" }]);
  });

  describe("served", () => {
    let t: TestServer;
    let cacheDir: string;
    before(async () => {
      cacheDir = await mkdtemp(join(tmpdir(), "streamfn-example-cache-"));
      t = await startTestServer({}, { functionsDir: kExampleFunctionsDir, cacheDir });
    });
    after(async () => {
      await t.close();
      await rm(cacheDir, { recursive: true, force: true });
    });

    it("streams examples/data/clickstream.ndjson over WebSocket, yielding sessions as they close and what runStream does", async () => {
      const data = await readExampleData("clickstream.ndjson");
      const expected = (await capturingWarnings(() => run(data))).result;
      const sessions = sessionsOf(expected);
      assert.deepEqual(sessions.map((s) => s.closedBy), ["gap", "gap", "gap", "end"], "the sample has four sessions");
      assert.deepEqual(sessions.map((s) => [s.converted, s.bounce]), [[false, false], [true, false], [false, false], [false, true]]);

      const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/sessionizer/streams/u-42`);
      for (const event of data) c.event(event);
      // the sessions closed by a gap arrive while the stream is still open
      await c.waitFor((r) => r.type === "output" && (r.data as Output).type === "session" && (r.data as Session).session === 3, 10_000);
      assert.equal(c.records.some((r) => r.type === "end"), false);
      c.end();
      const end = await c.waitEnd(10_000);
      assert.equal(end.status, "completed");
      assert.equal(end.reason, "end");
      assert.deepEqual(c.outputs(), expected);
    });
  });
});
