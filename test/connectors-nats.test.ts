// NATS subjects as stream sources and output sinks (core NATS and JetStream), over a real nats-server started by the test.
import { strict as assert } from "node:assert";
import { after, before, describe, it } from "node:test";
import { connect, headers } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { StreamfnError } from "../src/api/errors.js";
import { TestNatsServer, freePort, kSkipWithoutNats } from "./helpers/nats-server.js";
import { eventually, startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";

const kBurst = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  idleTimeoutMs: 400,
  sources: [{ nats: "sensors.*.burst", output: { topic: "alerts.{streamId}" }, end: { topic: "sensors.*.end" } }],
  async *handler(events, ctx) {
    let count = 0;
    let sum = 0;
    for await (const e of events) {
      count++;
      sum += e.value;
      yield { i: count, value: e.value };
    }
    yield { summary: true, count, sum, endReason: ctx.endReason, streamId: ctx.streamId };
  },
});
`;

const kSlow = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  idleTimeoutMs: 1500,
  inboxLimit: 2,
  sources: [{ nats: "slow.*", output: { topic: "slow-out.{key}" } }],
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

const kJet = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  idleTimeoutMs: 300,
  sources: [{ nats: "jet.*.in", output: { topic: "jet-out.{key}", jetstream: true } }],
  async *handler(events) {
    for await (const e of events) yield { twice: e.v * 2 };
  },
});
`;

interface Got {
  subject: string;
  n: number | undefined;
  streamId: string | undefined;
  value: unknown;
}

describe("NATS sources", { skip: kSkipWithoutNats }, () => {
  let nats: TestNatsServer;
  let srv: TestServer;
  let nc: NatsConnection;
  const got: Got[] = [];

  before(async () => {
    nats = await TestNatsServer.start();
    nc = await connect({ servers: nats.url });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "JETOUT", subjects: ["jet-out.>"] });
    srv = await startTestServer({ "burst.ts": kBurst, "slow.ts": kSlow, "jet.ts": kJet }, { connectors: { nats: nats.url, natsQueueLimit: 40 } });
    nc.subscribe(">", {
      callback: (_err, m) => {
        if (m.subject.startsWith("$JS") || m.subject.startsWith("_INBOX")) return;
        const n = m.headers?.get("n");
        let value: unknown;
        try {
          value = m.json();
        } catch {
          value = m.string();
        }
        got.push({ subject: m.subject, n: n ? Number(n) : undefined, streamId: m.headers?.get("streamId") || undefined, value });
      },
    });
    await nc.flush();
  });
  after(async () => {
    await nc?.close();
    await srv?.close();
    await nats?.stop();
  });

  const on = (subject: string) => got.filter((g) => g.subject === subject);
  const source = (fn: string) => srv.server.connectors.status().sources.find((s) => s.function === fn)!;
  const pub = (subject: string, body: unknown, seq?: number) => {
    const h = headers();
    if (seq !== undefined) h.set("seq", String(seq));
    nc.publish(subject, typeof body === "string" ? body : JSON.stringify(body), seq === undefined ? undefined : { headers: h });
  };

  it("a burst on a subject opens a stream, ends by idle gap, and its outputs arrive on the output subject in order with their numbers", async () => {
    for (let i = 1; i <= 4; i++) pub("sensors.n1.burst", { value: i });
    const outs = await eventually(() => (on("alerts.n1").length === 5 ? on("alerts.n1") : undefined), 10_000, "five outputs");
    assert.deepEqual(outs.map((o) => o.n), [1, 2, 3, 4, 5]);
    assert.ok(outs.every((o) => o.streamId === "n1"));
    assert.deepEqual(outs[4]!.value, { summary: true, count: 4, sum: 10, endReason: "idle", streamId: "n1" });
  });

  it("a message on the end subject ends the stream; a seq header at or below the last is not delivered twice; bad JSON is counted", async () => {
    pub("sensors.n2.burst", { value: 1 }, 1);
    pub("sensors.n2.burst", { value: 1 }, 1);
    pub("sensors.n2.burst", "{oops");
    pub("sensors.n2.burst", { value: 2 }, 2);
    pub("sensors.n2.end", "");
    const summary = await eventually(() => on("alerts.n2").find((o) => (o.value as { summary?: boolean }).summary), 10_000, "n2 summary");
    assert.deepEqual(summary.value, { summary: true, count: 2, sum: 3, endReason: "end", streamId: "n2" });
    const s = source("burst");
    assert.equal(s.duplicates, 1);
    assert.equal(s.parseFailures, 1);
    assert.ok(srv.logs.some((l) => l.msg === "payload is not JSON; skipped" && l.topic === "sensors.n2.burst"));
  });

  it("outputs to JetStream carry a message id: published once each, stored in the stream", async () => {
    for (let v = 1; v <= 3; v++) pub("jet.j1.in", { v });
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    await eventually(async () => (await jsm.streams.info("JETOUT")).state.messages === 3, 10_000, "three stored outputs");
    const consumer = await js.consumers.get("JETOUT");
    const values: unknown[] = [];
    for (let i = 0; i < 3; i++) {
      const m = await consumer.next({ expires: 2_000 });
      assert.ok(m);
      assert.equal(m.headers?.get("Nats-Msg-Id"), `jet/j1/${i + 1}`);
      values.push(m.json());
    }
    assert.deepEqual(values, [{ twice: 2 }, { twice: 4 }, { twice: 6 }]);
  });

  it("backpressure: a slow handler holds messages in a bounded queue; beyond it they are dropped and counted, the rest stay in order", async () => {
    const n = 400;
    for (let v = 0; v < n; v++) pub("slow.k1", { v });
    await nc.flush();
    const out = await eventually(() => on("slow-out.k1")[0], 30_000, "the slow summary");
    const values = (out.value as { values: number[] }).values;
    const s = source("slow");
    assert.ok(s.dropped > 0, "some messages were dropped past the queue bound");
    assert.equal(values.length + s.dropped, n, "every message was either delivered or counted as dropped");
    assert.ok(values.every((v, i) => i === 0 || v > values[i - 1]!), "delivered in publish order");
    assert.equal(s.messagesIn, values.length, "dropped messages never reached the source");
  });

  it("a NATS server that restarts: the connector reconnects, reports the gap, and the subscription carries on", async () => {
    await nats.restart();
    await eventually(() => srv.server.connectors.status().brokers[0]!.reconnects === 1, 20_000, "the reconnect");
    assert.ok(srv.logs.some((l) => typeof l.msg === "string" && l.msg.startsWith("NATS server reconnected after")));
    await eventually(() => !nc.isClosed() && srv.server.connectors.status().sources.every((s) => s.connected), 10_000, "connected again");
    // The test's own client reconnects too; publish until the renewed subscription takes it.
    await eventually(async () => {
      try {
        pub("sensors.after.burst", { value: 9 });
        await nc.flush();
      } catch {
        // The test's client may still be reconnecting.
      }
      return on("alerts.after").length > 0;
    }, 15_000, "an output after the restart");
  });
});

describe("NATS broker failures", { skip: kSkipWithoutNats }, () => {
  it("a wrong URL fails the start with BROKER_UNREACHABLE naming the server", async () => {
    const port = await freePort();
    await assert.rejects(
      startTestServer({ "burst.ts": kBurst }, { connectors: { nats: `nats://127.0.0.1:${port}`, connectTimeoutMs: 2_000 } }),
      (err: unknown) => err instanceof StreamfnError && err.code === "BROKER_UNREACHABLE" && err.message.includes(`nats://127.0.0.1:${port}`),
    );
  });

  it("refused credentials fail the start with BROKER_AUTH_FAILED, without the password in the message", async () => {
    const nats = await TestNatsServer.start(["--user", "svc", "--pass", "right"]);
    try {
      await assert.rejects(
        startTestServer({ "burst.ts": kBurst }, { connectors: { nats: `nats://svc:wrong@127.0.0.1:${nats.port}` } }),
        (err: unknown) => err instanceof StreamfnError && err.code === "BROKER_AUTH_FAILED" && !err.message.includes("wrong"),
      );
      const srv = await startTestServer({ "burst.ts": kBurst }, { connectors: { nats: `nats://svc:right@127.0.0.1:${nats.port}` } });
      try {
        assert.equal(srv.server.connectors.status().sources[0]?.connected, true);
      } finally {
        await srv.close();
      }
    } finally {
      await nats.stop();
    }
  });
});
