// The soak (bench/soak, `npm run soak`) for a few seconds, so a change that breaks it, or that
// makes any of its streams inexact, fails here rather than in the next long run.
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const kSoak = fileURLToPath(new URL("../bench/soak/main.js", import.meta.url));

interface Summary {
  streams: number;
  events: number;
  outputs: number;
  mismatches: number;
  rssMiB: { start: number; peak: number; end: number };
  kinds: Record<string, { streams: number; events: number; outputs: number; refusals: number; mismatches: number }>;
  failures: string[];
}

describe("soak smoke", () => {
  it("runs every kind of stream and fault for 5 s with no mismatch", { timeout: 120_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), "streamfn-soak-smoke-"));
    try {
      const json = join(dir, "summary.json");
      const child = spawn(process.execPath, [kSoak, "--duration-s", "5", "--streams", "8", "--json", json], { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      child.stdout.on("data", (c: Buffer) => (out += c.toString()));
      child.stderr.on("data", (c: Buffer) => (out += c.toString()));
      const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
      assert.equal(code, 0, out);
      const summary = JSON.parse(await readFile(json, "utf8")) as Summary;
      assert.equal(summary.mismatches, 0, out);
      assert.deepEqual(summary.failures, []);
      for (const kind of ["healthy", "malformed", "slow-consumer", "disconnect", "throw", "stall", "spin", "hog"]) {
        assert.ok((summary.kinds[kind]?.streams ?? 0) >= 1, `a ${kind} stream ran: ${out}`);
        for (const protocol of ["ws", "ndjson", "http"]) {
          if (summary.kinds[`${kind}/${protocol}`]) assert.equal(summary.kinds[`${kind}/${protocol}`]!.mismatches, 0);
        }
      }
      // Refused envelopes were counted as refusals, and healthy streams got one output per event.
      assert.ok(summary.kinds.malformed!.refusals > 0);
      assert.equal(summary.kinds.healthy!.outputs, summary.kinds.healthy!.events);
      assert.ok(summary.events > 0 && summary.outputs > 0);
      assert.match(out, /result: every stream exact/);
      assert.match(out, /kind +streams +events +outputs/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
