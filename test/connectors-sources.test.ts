// Declaring sources: defineStreamFunction's `sources`, the config file's `sources`, and the flags from the binary.
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { defineStreamFunction } from "../src/api/index.js";
import { StreamfnError } from "../src/api/errors.js";
import { validateSources } from "../src/api/sources.js";
import { readConfigFile } from "../src/cli/config.js";
import { topicMatches } from "../src/connectors/topics.js";
import { freePort } from "./helpers/nats-server.js";

const kMain = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));

const refuses = (sources: unknown, pattern: RegExp) =>
  assert.throws(
    () => defineStreamFunction({ sources: sources as never, async *handler() {} }),
    (err: unknown) => err instanceof StreamfnError && err.code === "INVALID_OPTIONS" && pattern.test(err.message),
  );

describe("sources in defineStreamFunction", () => {
  it("takes a topic filter and fills in the stream id level from its first wildcard", () => {
    const fn = defineStreamFunction({ sources: [{ mqtt: "sensors/+/burst" }, { nats: "a.b.*.c", payload: "binary" }], async *handler() {} });
    assert.deepEqual(fn.sources, [
      { mqtt: "sensors/+/burst", streamId: { level: 1 } },
      { nats: "a.b.*.c", streamId: { level: 2 }, payload: "binary" },
    ]);
    assert.deepEqual(fn.options, {});
  });

  it("refuses bad sources with an error naming the entry and what is wrong", () => {
    refuses({ mqtt: "a/+" }, /sources must be an array/);
    refuses([{ mqtt: "a/+", nats: "a.*" }], /sources\[0\]: give exactly one of "mqtt"/);
    refuses([{ mqtt: "sensors/burst" }], /no single-level wildcard to take the stream id from/);
    refuses([{ mqtt: "a/b+/c" }], /"\+" and "#" must fill a whole level/);
    refuses([{ mqtt: "a/#/c" }], /"#" must be the last level/);
    refuses([{ nats: "a..b" }], /empty token/);
    refuses([{ mqtt: "a/+", qos: 2 }], /qos must be 0 or 1/);
    refuses([{ mqtt: "a/+", topic: "x" }], /unknown key "topic"/);
    refuses([{ mqtt: "a/+", streamId: { level: 5 } }], /streamId.level must be an index 0-1/);
    refuses([{ mqtt: "a/+", payload: "binary", streamId: { field: "id" } }], /needs a JSON payload/);
    refuses([{ mqtt: "a/+", output: { topic: "out/{device}" } }], /unknown placeholder \{device\}/);
    refuses([{ mqtt: "a/+", output: { topic: "out/+/{streamId}" } }], /may not contain wildcards/);
    refuses([{ nats: "a.*", output: { topic: "o.{key}", qos: 1 } }], /applies to MQTT only/);
    refuses([{ mqtt: "a/+", end: {} }], /end needs "topic" or "field"/);
  });

  it("checks sources in validateSources the same way for the server's configuration", () => {
    assert.throws(() => validateSources([{ nats: "x.*", output: { topic: "y.{key}", jetstream: "yes" } }], "config c.json: sources.f"), /config c\.json: sources\.f: sources\[0\]: output\.jetstream must be true or false/);
  });

  it("matches topics as the brokers do", () => {
    assert.ok(topicMatches("sensors/+/burst", "sensors/a/burst", "mqtt"));
    assert.ok(!topicMatches("sensors/+/burst", "sensors/a/b/burst", "mqtt"));
    assert.ok(topicMatches("sensors/#", "sensors", "mqtt"));
    assert.ok(topicMatches("sensors/#", "sensors/a/b", "mqtt"));
    assert.ok(topicMatches("a.*.c", "a.b.c", "nats"));
    assert.ok(topicMatches("a.>", "a.b.c", "nats"));
    assert.ok(!topicMatches("a.>", "a", "nats"));
  });
});

describe("sources in the config file and flags", () => {
  it("reads mqtt, nats and sources from the config file, naming a bad entry", async () => {
    const dir = await mkdtemp(join(tmpdir(), "streamfn-cfg-"));
    try {
      const good = join(dir, "good.json");
      await writeFile(good, JSON.stringify({ mqtt: "mqtt://127.0.0.1:1883", nats: "nats://127.0.0.1:4222", sources: { "sensor-burst": [{ mqtt: "s/+/b" }] } }));
      const cfg = readConfigFile(good);
      assert.equal(cfg.mqtt, "mqtt://127.0.0.1:1883");
      assert.deepEqual(cfg.sources, { "sensor-burst": [{ mqtt: "s/+/b", streamId: { level: 1 } }] });
      const bad = join(dir, "bad.json");
      await writeFile(bad, JSON.stringify({ sources: { f: [{ mqtt: "s/b" }] } }));
      assert.throws(() => readConfigFile(bad), /sources\.f: sources\[0\]: "s\/b" has no single-level wildcard/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("`streamfn serve --mqtt` with nothing listening exits with an error naming the broker", async () => {
    const dir = await mkdtemp(join(tmpdir(), "streamfn-serve-"));
    try {
      const port = await freePort();
      const child = spawn(process.execPath, [kMain, "serve", dir, "--port", "0", "--mqtt", `mqtt://127.0.0.1:${port}`], { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
      child.stderr!.on("data", (c: Buffer) => (out += c.toString()));
      const code = await new Promise<number | null>((r) => child.once("exit", (c) => r(c)));
      assert.notEqual(code, 0);
      assert.match(out, new RegExp(`cannot connect to MQTT broker mqtt://127\\.0\\.0\\.1:${port}`));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("a function with sources on a server without brokers", () => {
  it("serves as usual and shows its source as not bound, naming the missing flag", async () => {
    const { startTestServer } = await import("./helpers/server.js");
    const srv = await startTestServer({
      "s.ts": `import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({ sources: [{ mqtt: "a/+/b" }], async *handler(events) { for await (const e of events) yield e; } });`,
    });
    try {
      const res = await fetch(`${srv.url}/v1/status`);
      const status = (await res.json()) as { connectors: { brokers: unknown[]; sources: { function: string; connected: boolean; error: string | null }[] } };
      assert.deepEqual(status.connectors.brokers, []);
      assert.deepEqual(
        status.connectors.sources.map((s) => [s.function, s.connected, s.error]),
        [["s", false, "not bound: no MQTT broker (--mqtt) given to the server"]],
      );
    } finally {
      await srv.close();
    }
  });
});
