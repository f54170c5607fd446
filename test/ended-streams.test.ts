import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import { EndedStreams } from "../src/router/ended-streams.js";
import type { RetainedOutput } from "../src/router/stream.js";

const end = { type: "end" as const, status: "completed" as const, reason: "end" as const, events: 1, outputs: 3 };
const outs = (...jsons: string[]): RetainedOutput[] => jsons.map((json, i) => ({ n: i + 1, json }));

describe("ended streams keep their last outputs within a global bound", () => {
  it("drops the oldest ended streams' outputs first when over the count bound, keeping their ids", () => {
    const ended = new EndedStreams(60_000, 100, { maxOutputs: 5, maxOutputBytes: 1_000_000 });
    const now = Date.now();
    ended.add("a", { ...end, endedAt: now, retained: outs("1", "2", "3") });
    ended.add("b", { ...end, endedAt: now, retained: outs("4", "5") });
    assert.deepEqual(ended.kept, { outputs: 5, bytes: 5 });
    ended.add("c", { ...end, endedAt: now, retained: outs("6") });
    assert.equal(ended.get("a")!.retained, undefined);
    assert.equal(ended.get("a")!.outputsDropped, true);
    assert.equal(ended.get("a")!.status, "completed");
    assert.equal(ended.get("b")!.retained!.length, 2);
    assert.deepEqual(ended.kept, { outputs: 3, bytes: 3 });
  });

  it("bounds the bytes kept, binary outputs included", () => {
    const ended = new EndedStreams(60_000, 100, { maxOutputs: 1000, maxOutputBytes: 100 });
    const now = Date.now();
    ended.add("a", { ...end, endedAt: now, retained: [{ n: 1, bytes: new Uint8Array(60) }] });
    ended.add("b", { ...end, endedAt: now, retained: outs("x".repeat(50)) });
    assert.equal(ended.get("a")!.retained, undefined);
    assert.deepEqual(ended.kept, { outputs: 1, bytes: 50 });
    // One stream's outputs over the whole bound are not kept at all.
    ended.add("c", { ...end, endedAt: now, retained: outs("y".repeat(500)) });
    assert.deepEqual(ended.kept, { outputs: 0, bytes: 0 });
    assert.ok(ended.get("c"));
  });

  it("forgets outputs with the entries they belong to", () => {
    const ended = new EndedStreams(60_000, 2, { maxOutputs: 1000, maxOutputBytes: 1000 });
    const now = Date.now();
    ended.add("a", { ...end, endedAt: now, retained: outs("1") });
    ended.add("b", { ...end, endedAt: now, retained: outs("2") });
    ended.add("c", { ...end, endedAt: now, retained: outs("3") });
    assert.equal(ended.get("a"), undefined);
    assert.deepEqual(ended.kept, { outputs: 2, bytes: 2 });
    // Re-adding a key replaces its outputs rather than counting them twice.
    ended.add("c", { ...end, endedAt: now, retained: outs("3", "4") });
    assert.deepEqual(ended.kept, { outputs: 3, bytes: 3 });
    ended.clear();
    assert.deepEqual(ended.kept, { outputs: 0, bytes: 0 });
  });
});

describe("ended streams keep their ctx.log lines within a global bound", () => {
  const lines = (n: number, msg = "m"): { time: number; level: "info"; msg: string }[] =>
    Array.from({ length: n }, (_, i) => ({ time: i, level: "info" as const, msg }));

  it("drops the oldest ended streams' lines first, counting them as dropped, and keeps their ids", () => {
    const ended = new EndedStreams(60_000, 100, { maxLogLines: 5, maxLogChars: 1_000_000 });
    const now = Date.now();
    ended.add("a", { ...end, endedAt: now, logs: lines(3), logsDropped: 2 });
    ended.add("b", { ...end, endedAt: now, logs: lines(2) });
    assert.deepEqual(ended.keptLogs, { lines: 5, chars: 5 });
    ended.add("c", { ...end, endedAt: now, logs: lines(1) });
    assert.equal(ended.get("a")!.logs, undefined);
    assert.equal(ended.get("a")!.logsDropped, 5, "its 2 dropped before plus the 3 it lost");
    assert.equal(ended.get("b")!.logs!.length, 2);
    assert.deepEqual(ended.keptLogs, { lines: 3, chars: 3 });
  });

  it("bounds the characters kept and forgets lines with their entries", () => {
    const ended = new EndedStreams(60_000, 1, { maxLogLines: 1_000, maxLogChars: 100 });
    const now = Date.now();
    ended.add("a", { ...end, endedAt: now, logs: lines(2, "x".repeat(40)) });
    assert.deepEqual(ended.keptLogs, { lines: 2, chars: 80 });
    ended.add("b", { ...end, endedAt: now, logs: lines(1, "y".repeat(10)) });
    assert.equal(ended.get("a"), undefined, "over the count bound of 1");
    assert.deepEqual(ended.keptLogs, { lines: 1, chars: 10 });
    ended.clear();
    assert.deepEqual(ended.keptLogs, { lines: 0, chars: 0 });
  });
});

describe("reading ended streams", () => {
  it("lists the entries under a prefix newest first, skipping expired ones and other prefixes", () => {
    const ended = new EndedStreams(60_000, 100);
    const now = Date.now();
    ended.add("f\nold", { ...end, endedAt: now - 120_000 });
    ended.add("f\na", { ...end, endedAt: now - 2 });
    ended.add("g\nx", { ...end, endedAt: now - 1 });
    ended.add("f\nb", { ...end, endedAt: now, status: "failed" });
    assert.deepEqual(
      ended.newestFirst("f\n").map(([key, e]) => [key, e.status]),
      [
        ["f\nb", "failed"],
        ["f\na", "completed"],
      ],
    );
    assert.deepEqual(ended.newestFirst().map(([key]) => key), ["f\nb", "g\nx", "f\na"]);
  });
});
