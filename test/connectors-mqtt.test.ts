// MQTT topics as stream sources and output sinks, over a real mosquitto started by the test.
import { strict as assert } from "node:assert";
import { after, before, describe, it } from "node:test";
import { TestMosquitto, kSkipWithoutMosquitto } from "./helpers/mosquitto.js";
import { TestMqttClient } from "./helpers/mqtt-client.js";
import { eventually, startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";

/** Echoes each reading with its position, then a summary when the burst ends. */
const kBurst = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  idleTimeoutMs: 400,
  sources: [{ mqtt: "sensors/+/burst", output: { topic: "alerts/{streamId}" } }],
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

describe("MQTT sources", { skip: kSkipWithoutMosquitto }, () => {
  let broker: TestMosquitto;
  let srv: TestServer;
  let client: TestMqttClient;

  before(async () => {
    broker = await TestMosquitto.start();
    srv = await startTestServer({ "burst.ts": kBurst }, { connectors: { mqtt: broker.url } });
    client = await TestMqttClient.connect(broker.url);
    await client.subscribe("alerts/#");
  });
  after(async () => {
    await client?.close();
    await srv?.close();
    await broker?.stop();
  });

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
    const ended = srv.server.table.ended("burst", "s1");
    assert.equal(ended?.reason, "idle");
  });
});
