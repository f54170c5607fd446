// MQTT topics as stream sources and output sinks, over a real mosquitto started by the test.
import { strict as assert } from "node:assert";
import { after, before, describe, it } from "node:test";
import { StreamfnError } from "../src/api/errors.js";
import { freePort } from "./helpers/nats-server.js";
import { TestMosquitto, kSkipWithoutMosquitto } from "./helpers/mosquitto.js";
import { TestMqttClient } from "./helpers/mqtt-client.js";
import { eventually, sleep, startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";

async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url);
  assert.equal(res.status, 200, url);
  return (await res.json()) as T;
}

async function getText(url: string): Promise<string> {
  const res = await fetch(url);
  assert.equal(res.status, 200, url);
  return res.text();
}

/** Echoes each reading with its position, then a summary when the burst ends. */
const kBurst = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  idleTimeoutMs: 400,
  sources: [{ mqtt: "sensors/+/burst", output: { topic: "alerts/{streamId}" }, end: { topic: "sensors/+/end", field: "done" } }],
  async *handler(events, ctx) {
    let count = 0;
    let sum = 0;
    for await (const e of events) {
      count++;
      sum += e.value;
      yield { i: count, value: e.value, seq: ctx.event.seq };
    }
    yield { summary: true, count, sum, endReason: ctx.endReason, streamId: ctx.streamId };
  },
});
`;

/** Only a summary: every value of the burst in arrival order. */
const kOrder = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  idleTimeoutMs: 500,
  async *handler(events, ctx) {
    const values = [];
    for await (const e of events) values.push(e.v);
    yield { streamId: ctx.streamId, values, endReason: ctx.endReason };
  },
});
`;

/** A slow handler behind a small inbox. */
const kSlow = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  idleTimeoutMs: 2000,
  inboxLimit: 4,
  async *handler(events) {
    const values = [];
    for await (const e of events) {
      await new Promise((r) => setTimeout(r, 5));
      values.push(e.v);
    }
    yield { values };
  },
});
`;

/** Binary payloads: lengths and first byte. */
const kBytes = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  idleTimeoutMs: 300,
  sources: [{ mqtt: "cams/+/frame", payload: "binary", output: { topic: "frames/{key}" } }],
  async *handler(events) {
    for await (const e of events) yield { bytes: e instanceof Uint8Array, len: e.byteLength, first: e[0] };
  },
});
`;

/** Its output topic is under its own source filter: it must not feed itself. */
const kLoopy = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  idleTimeoutMs: 300,
  sources: [{ mqtt: "loop/+", output: { topic: "loop/{key}-out" } }],
  async *handler(events) {
    for await (const e of events) yield e;
  },
});
`;

const kSources = {
  order: [{ mqtt: "fleet/+/reading", output: { topic: "fleet-out/{streamId}" } }],
  slow: [{ mqtt: "slow/+/in", output: { topic: "slow-out/{streamId}" } }],
};

describe("MQTT sources", { skip: kSkipWithoutMosquitto }, () => {
  let broker: TestMosquitto;
  let srv: TestServer;
  let client: TestMqttClient;

  before(async () => {
    broker = await TestMosquitto.start();
    srv = await startTestServer(
      { "burst.ts": kBurst, "order.ts": kOrder, "slow.ts": kSlow, "bytes.ts": kBytes, "loopy.ts": kLoopy },
      { connectors: { mqtt: broker.url, sources: kSources } },
    );
    client = await TestMqttClient.connect(broker.url);
    await client.subscribe("#");
  });
  after(async () => {
    await client?.close();
    await srv?.close();
    await broker?.stop();
  });

  const source = (fn: string) => srv.server.connectors.status().sources.find((s) => s.function === fn)!;

  it("a burst on one topic opens a stream, fills it, ends it by idle gap and its outputs arrive on the sink topic in order with their numbers", async () => {
    for (let i = 1; i <= 5; i++) await client.publish("sensors/s1/burst", { value: i * 10 });
    const outs = await eventually(() => {
      const o = client.outputs("alerts/s1");
      return o.length === 6 ? o : undefined;
    }, 10_000, "six outputs on alerts/s1");
    assert.deepEqual(outs.map((o) => o.n), [1, 2, 3, 4, 5, 6]);
    assert.ok(outs.every((o) => o.streamId === "s1"));
    assert.deepEqual(outs.slice(0, 5).map((o) => o.value), [10, 20, 30, 40, 50].map((value, k) => ({ i: k + 1, value, seq: k + 1 })));
    assert.deepEqual(outs[5]!.value, { summary: true, count: 5, sum: 150, endReason: "idle", streamId: "s1" });
    assert.equal(srv.server.table.ended("burst", "s1")?.reason, "idle");

    // The sensor's next burst is a new stream: the first id is still remembered as ended.
    await client.publish("sensors/s1/burst", { value: 1 });
    const next = await eventually(() => client.outputs("alerts/s1~2").find((o) => (o.value as { summary?: boolean }).summary), 10_000, "the second burst's summary");
    assert.deepEqual(next.value, { summary: true, count: 1, sum: 1, endReason: "idle", streamId: "s1~2" });
  });

  it("ends a stream on a message on the end topic, or on a payload whose end field is true", async () => {
    await client.publish("sensors/e1/burst", { value: 1 });
    await client.publish("sensors/e1/burst", { value: 2 });
    await client.publish("sensors/e1/end", "");
    await client.publish("sensors/e2/burst", { value: 5 });
    await client.publish("sensors/e2/burst", { done: true });
    const s1 = await eventually(() => client.outputs("alerts/e1").find((o) => (o.value as { summary?: boolean }).summary), 10_000, "e1 summary");
    const s2 = await eventually(() => client.outputs("alerts/e2").find((o) => (o.value as { summary?: boolean }).summary), 10_000, "e2 summary");
    assert.deepEqual(s1.value, { summary: true, count: 2, sum: 3, endReason: "end", streamId: "e1" });
    assert.deepEqual(s2.value, { summary: true, count: 1, sum: 5, endReason: "end", streamId: "e2" });
    assert.ok(source("burst").endMarkers >= 2);
  });

  it("many sensors at once: one stream per sensor, every reading in its own stream, in order", async () => {
    const sensors = Array.from({ length: 20 }, (_, i) => `m${i}`);
    const perSensor = 25;
    const sends: Promise<void>[] = [];
    for (let k = 0; k < perSensor; k++) {
      for (const s of sensors) sends.push(client.publish(`fleet/${s}/reading`, { v: k }));
    }
    await Promise.all(sends);
    for (const s of sensors) {
      const out = await eventually(() => client.outputs(`fleet-out/${s}`)[0], 15_000, `summary of ${s}`);
      assert.deepEqual(out.value, { streamId: s, values: Array.from({ length: perSensor }, (_, k) => k), endReason: "idle" });
      assert.equal(out.n, 1);
    }
    assert.equal(source("order").streamsOpened, sensors.length);
    assert.equal(source("order").from, "config");
  });

  it("a QoS 1 message delivered twice (same seq) reaches the handler once; seq also comes from the MQTT 5 user property", async () => {
    await client.publish("sensors/d1/burst", { value: 1, seq: 1 });
    await client.publish("sensors/d1/burst", { value: 2, seq: 2 });
    // The publisher's retry of the same packet: DUP flag, same payload.
    await client.publish("sensors/d1/burst", { value: 2, seq: 2 }, { qos: 1, dup: true });
    await client.publish("sensors/d1/burst", { value: 3 }, { qos: 1, properties: { userProperties: { seq: "3" } } });
    await client.publish("sensors/d1/burst", { value: 3 }, { qos: 1, properties: { userProperties: { seq: "3" } } });
    const summary = await eventually(() => client.outputs("alerts/d1").find((o) => (o.value as { summary?: boolean }).summary), 10_000, "d1 summary");
    assert.deepEqual(summary.value, { summary: true, count: 3, sum: 6, endReason: "idle", streamId: "d1" });
    assert.deepEqual(client.outputs("alerts/d1").map((o) => o.n), [1, 2, 3, 4]);
    assert.ok(source("burst").duplicates >= 2);
  });

  it("messages missing by seq (lost on the way) are counted as gaps; the stream takes what came", async () => {
    const before = source("burst").gaps;
    for (const seq of [1, 2, 5, 6, 9]) await client.publish("sensors/g1/burst", { value: seq, seq });
    const summary = await eventually(() => client.outputs("alerts/g1").find((o) => (o.value as { summary?: boolean }).summary), 10_000, "g1 summary");
    assert.deepEqual(summary.value, { summary: true, count: 5, sum: 23, endReason: "idle", streamId: "g1" });
    assert.equal(source("burst").gaps - before, 4);
  });

  it("a message whose id is not a valid stream id is dropped and counted; the source goes on", async () => {
    const before = source("burst").dropped;
    await client.publish("sensors/bad id!/burst", { value: 1 });
    await client.publish(`sensors/${"x".repeat(200)}/burst`, { value: 1 });
    await client.publish("sensors/v1/burst", { value: 3 });
    const summary = await eventually(() => client.outputs("alerts/v1").find((o) => (o.value as { summary?: boolean }).summary), 10_000, "v1 summary");
    assert.deepEqual(summary.value, { summary: true, count: 1, sum: 3, endReason: "idle", streamId: "v1" });
    assert.equal(source("burst").dropped - before, 2);
    assert.ok(srv.logs.some((l) => l.msg === "cannot open a stream for the message; dropped" && l.code === "INVALID_STREAM_ID"));
  });

  it("a payload that does not parse is counted and logged with its topic, and the stream goes on", async () => {
    const before = source("burst").parseFailures;
    await client.publish("sensors/b1/burst", { value: 7 });
    await client.publish("sensors/b1/burst", "{not json");
    await client.publish("sensors/b1/burst", { value: 8 });
    const summary = await eventually(() => client.outputs("alerts/b1").find((o) => (o.value as { summary?: boolean }).summary), 10_000, "b1 summary");
    assert.deepEqual(summary.value, { summary: true, count: 2, sum: 15, endReason: "idle", streamId: "b1" });
    assert.equal(source("burst").parseFailures, before + 1);
    const line = srv.logs.find((l) => l.msg === "payload is not JSON; skipped" && l.topic === "sensors/b1/burst");
    assert.ok(line, "a log line naming the topic");
  });

  it("an output topic under the source's own filter does not feed the function back", async () => {
    await client.publish("loop/a", { v: 1 });
    const out = await eventually(() => client.outputs("loop/a-out")[0], 10_000, "the output");
    assert.deepEqual(out.value, { v: 1 });
    await eventually(() => srv.server.table.ended("loopy", "a"), 10_000, "the stream to end idle");
    assert.equal(srv.server.table.get("loopy", "a-out") ?? srv.server.table.ended("loopy", "a-out"), undefined);
    assert.equal(source("loopy").messagesIn, 1);
  });

  it("binary payloads reach the handler as Uint8Array", async () => {
    await client.publish("cams/c1/frame", new Uint8Array([9, 1, 2]));
    await client.publish("cams/c1/frame", new Uint8Array(1000).fill(4));
    const outs = await eventually(() => {
      const o = client.outputs("frames/c1");
      return o.length === 2 ? o : undefined;
    }, 10_000, "two frame outputs");
    assert.deepEqual(outs.map((o) => o.value), [{ bytes: true, len: 3, first: 9 }, { bytes: true, len: 1000, first: 4 }]);
  });

  it("backpressure: a fast publisher and a slow handler lose nothing, and the stream's inbox stays within its limit", async () => {
    let maxQueued = 0;
    const sampler = setInterval(() => {
      const h = srv.server.table.get("slow", "k1");
      if (h) maxQueued = Math.max(maxQueued, h.queued);
    }, 2);
    try {
      const n = 300;
      const sends: Promise<void>[] = [];
      for (let v = 0; v < n; v++) sends.push(client.publish("slow/k1/in", { v }));
      await Promise.all(sends);
      const out = await eventually(() => client.outputs("slow-out/k1")[0], 30_000, "the slow stream's summary");
      assert.deepEqual(out.value, { values: Array.from({ length: n }, (_, v) => v) });
    } finally {
      clearInterval(sampler);
    }
    assert.ok(maxQueued <= 4, `queued events stayed within inboxLimit 4 (max seen ${maxQueued})`);
    assert.ok(source("slow").paused > 0, "the source was held back at least once");
  });

  it("/v1/status and /metrics show each source: connected, messages in, parse failures, streams opened", async () => {
    const status = await getJson<{ connectors: { brokers: { broker: string; connected: boolean }[]; sources: Record<string, unknown>[] } }>(`${srv.url}/v1/status`);
    const burst = status.connectors.sources.find((s) => s.function === "burst")!;
    assert.equal(burst.connected, true);
    assert.equal(burst.topic, "sensors/+/burst");
    assert.equal(burst.from, "function");
    assert.ok((burst.messagesIn as number) > 5);
    assert.ok((burst.streamsOpened as number) >= 5);
    assert.equal(burst.parseFailures, 1);
    assert.deepEqual(status.connectors.brokers.map((b) => [b.broker, b.connected]), [["mqtt", true]]);
    const metrics = await getText(`${srv.url}/metrics`);
    assert.match(metrics, /streamfn_source_connected\{function="burst",broker="mqtt",topic="sensors\/\+\/burst"\} 1/);
    assert.match(metrics, /streamfn_source_parse_failures_total\{function="burst",broker="mqtt",topic="sensors\/\+\/burst"\} 1/);
    assert.match(metrics, /streamfn_source_messages_in_total\{function="order",broker="mqtt",topic="fleet\/\+\/reading"\} 500/);
    assert.match(metrics, /streamfn_broker_connected\{broker="mqtt",url="mqtt:\/\/127.0.0.1:\d+"\} 1/);
  });

  it("the dashboard's feed carries each source and its page has a place for them", async () => {
    const ctrl = new AbortController();
    const res = await fetch(`${srv.url}/v1/dashboard/feed`, { signal: ctrl.signal });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    let text = "";
    try {
      while (!/event: tick\ndata: .*\n\n/.test(text)) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
    } finally {
      ctrl.abort();
    }
    const tick = JSON.parse(/event: tick\ndata: (.*)\n\n/.exec(text)![1]!) as { sources: { function: string; topic: string; connected: boolean; messagesIn: number; streamsOpened: number }[] };
    const burst = tick.sources.find((x) => x.function === "burst")!;
    assert.equal(burst.topic, "sensors/+/burst");
    assert.equal(burst.connected, true);
    assert.ok(burst.messagesIn > 0 && burst.streamsOpened > 0);
    assert.match(await getText(`${srv.url}/`), /id="sources-panel"/);
  });

  it("outputs of a source's stream are also readable over SSE by stream id", async () => {
    await client.publish("sensors/sse1/burst", { value: 4 });
    const res = await fetch(`${srv.url}/v1/functions/burst/streams/sse1/outputs?from=0`);
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.match(text, /"value":4/);
    assert.match(text, /"summary":true/);
  });
});

describe("MQTT broker failures", { skip: kSkipWithoutMosquitto }, () => {
  it("a wrong broker URL fails the start with an error naming the broker, not a hang", async () => {
    const port = await freePort();
    await assert.rejects(
      startTestServer({ "burst.ts": kBurst }, { connectors: { mqtt: `mqtt://127.0.0.1:${port}`, connectTimeoutMs: 2_000 } }),
      (err: unknown) => err instanceof StreamfnError && err.code === "BROKER_UNREACHABLE" && err.message.includes(`mqtt://127.0.0.1:${port}`),
    );
  });

  it("refused credentials fail the start with BROKER_AUTH_FAILED; the right ones connect", async () => {
    const broker = await TestMosquitto.start({ users: { dev: "s3cret" } });
    try {
      await assert.rejects(
        startTestServer({ "burst.ts": kBurst }, { connectors: { mqtt: `mqtt://dev:wrong@127.0.0.1:${broker.port}` } }),
        (err: unknown) => err instanceof StreamfnError && err.code === "BROKER_AUTH_FAILED" && err.message.includes(`mqtt://127.0.0.1:${broker.port}`) && !err.message.includes("wrong"),
      );
      const srv = await startTestServer({ "burst.ts": kBurst }, { connectors: { mqtt: broker.url, mqttUsername: "dev", mqttPassword: "s3cret" } });
      try {
        assert.equal(srv.server.connectors.status().sources[0]?.connected, true);
      } finally {
        await srv.close();
      }
    } finally {
      await broker.stop();
    }
  });

  it("a broker that restarts mid-burst: the connector reconnects, resubscribes, reports the gap; streams idle meanwhile end idle", async () => {
    const broker = await TestMosquitto.start();
    const srv = await startTestServer({ "order.ts": kOrder }, { connectors: { mqtt: broker.url, sources: kSources } });
    let client = await TestMqttClient.connect(broker.url);
    try {
      await client.subscribe("fleet-out/#");
      for (let v = 0; v < 3; v++) await client.publish("fleet/r1/reading", { v });
      await client.close();
      await broker.pause();
      await eventually(() => srv.server.connectors.status().brokers[0]!.connected === false, 10_000, "the link to notice");
      // r1 goes idle while the broker is down: it ends as usual; its summary waits for the broker.
      await eventually(() => srv.server.table.ended("order", "r1"), 10_000, "r1 to end idle");
      await broker.resume();
      await eventually(() => srv.server.connectors.status().brokers[0]!.reconnects === 1, 15_000, "the reconnect");
      const st = srv.server.connectors.status();
      assert.equal(st.sources[0]!.connected, true);
      assert.equal(typeof st.brokers[0]!.lastGap?.ms, "number");
      assert.ok(srv.logs.some((l) => typeof l.msg === "string" && l.msg.startsWith("MQTT broker reconnected after") && typeof l.gapMs === "number"));
      assert.equal(srv.server.table.ended("order", "r1")?.reason, "idle");
      client = await TestMqttClient.connect(broker.url);
      await client.subscribe("fleet-out/#");
      for (let v = 3; v < 6; v++) await client.publish("fleet/r1/reading", { v });
      const out = await eventually(() => client.outputs("fleet-out/r1~2")[0], 10_000, "the burst after the restart");
      assert.deepEqual(out.value, { streamId: "r1~2", values: [3, 4, 5], endReason: "idle" });
    } finally {
      await client.close().catch(() => {});
      await srv.close();
      await broker.stop();
    }
  });
});
