import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { kSkipWithoutNats } from "./helpers/nats-server.js";
import { TestCluster } from "./helpers/cluster-procs.js";
import { StreamClient } from "./helpers/ws-client.js";
import { eventually, startTestServer } from "./helpers/server.js";
import { call } from "./helpers/http-client.js";
import { openCluster } from "../src/cluster/open-cluster.js";

interface StatusDoc {
  takeovers: number;
  workers: { worker: string; functions: { name: string; slots: number; active: number }[]; streams: { streamId: string; epoch: number; takeover: boolean }[] }[];
}

async function clusterStatus(url: string): Promise<StatusDoc> {
  const r = await call(`${url}/v1/status`);
  assert.equal(r.status, 200);
  return r.body as unknown as StatusDoc;
}

// Deterministic (outputs depend only on the input events), so a replay regenerates the same outputs.
const kRunningSum = `import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  idleTimeoutMs: 60_000,
  async *handler(events) {
    let sum = 0;
    for await (const e of events) {
      sum += e.x;
      yield { x: e.x, sum };
    }
    yield { total: sum };
  },
});
`;
const kFunctions = { "sum.ts": kRunningSum };
// Not to be run twice: a stream that lost its worker ends with STREAM_NOT_REPLAYABLE.
const kOnce = `import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  idleTimeoutMs: 60_000,
  replay: false,
  async *handler(events) {
    for await (const e of events) yield e;
  },
});
`;

async function runStream(wsUrl: string, id: string, xs: number[]): Promise<unknown[]> {
  const c = await StreamClient.connect(`${wsUrl}/v1/functions/sum/streams/${id}`);
  xs.forEach((x, i) => c.event({ x }, i + 1));
  c.end();
  const end = await c.waitEnd(30_000);
  assert.equal(end.status, "completed", JSON.stringify(end));
  c.close();
  return c.outputs();
}

describe("cluster end to end: nats-server, workers and gateways as processes", { skip: kSkipWithoutNats }, () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await TestCluster.start(kFunctions);
  });
  after(async () => {
    await cluster?.close();
  });

  it("one stream through one gateway and one worker: the same outputs as embedded mode", async () => {
    const xs = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    const embedded = await startTestServer(kFunctions);
    let expected: unknown[];
    try {
      expected = await runStream(embedded.wsUrl, "a-1", xs);
    } finally {
      await embedded.close();
    }
    await cluster.worker("w1");
    const gw = await cluster.gateway();
    const got = await runStream(gw.wsUrl, "a-1", xs);
    assert.deepEqual(got, expected);
    assert.equal(got.length, 11);
  });
});

const kInline = `import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  sandbox: "inline",
  async *handler(events) {
    for await (const e of events) yield e;
  },
});
`;

describe("cluster: a worker started with --no-inline", { skip: kSkipWithoutNats }, () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await TestCluster.start({ ...kFunctions, "here.ts": kInline }, "noinline");
  });
  after(async () => {
    await cluster?.close();
  });

  it("refuses a function that asks for the inline tier, with SANDBOX_NOT_ALLOWED, and serves the others", async () => {
    const w = await cluster.worker("w-strict", 2_000, ["--no-inline"]);
    const refusal = w.bg.output.split("\n").find((l) => l.includes("SANDBOX_NOT_ALLOWED"));
    assert.ok(refusal, `the worker says why it does not serve here:\n${w.bg.output}`);
    assert.match(refusal, /here/);
    const gw = await cluster.gateway();
    assert.equal((await runStream(gw.wsUrl, "strict-1", [1, 2])).length, 3);
  });
});

// One slot per worker: a worker with a stream running pulls no other.
const kOneSlot = `import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  idleTimeoutMs: 60_000,
  concurrency: 1,
  maxInstances: 1,
  async *handler(events) {
    for await (const e of events) yield e;
  },
});
`;

describe("cluster: streams spread over workers with free slots", { skip: kSkipWithoutNats }, () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await TestCluster.start({ "one.ts": kOneSlot }, "spread");
  });
  after(async () => {
    await cluster?.close();
  });

  it("two workers of one slot each run one stream each; a third stream waits until a slot frees", async () => {
    const w1 = await cluster.worker("spread-1");
    const w2 = await cluster.worker("spread-2");
    const gw = await cluster.gateway();
    const open = async (id: string): Promise<StreamClient> => {
      const c = await StreamClient.connect(`${gw.wsUrl}/v1/functions/one/streams/${id}`);
      c.event({ id }, 1);
      return c;
    };
    const s1 = await open("s1");
    await s1.waitFor((r) => r.type === "output", 30_000);
    const s2 = await open("s2");
    await s2.waitFor((r) => r.type === "output", 30_000);
    const owner = (id: string): string | undefined => (w1.taken().includes(id) ? "spread-1" : w2.taken().includes(id) ? "spread-2" : undefined);
    assert.ok(owner("s1") && owner("s2"), "both streams have an owner");
    assert.notEqual(owner("s1"), owner("s2"), "the second stream went to the worker with a free slot");
    // The gateway's status shows both workers full, each with its one stream.
    await eventually(async () => {
      const st = await clusterStatus(gw.url);
      const byName = new Map(st.workers.map((w) => [w.worker, w]));
      return (["s1", "s2"] as const).every((id) => {
        const w = byName.get(owner(id)!);
        return w?.streams.some((s) => s.streamId === id) && w.functions[0]?.slots === 1 && w.functions[0]?.active === 1;
      });
    }, 15_000, "status shows each worker running its stream with its one slot used");

    const s3 = await open("s3");
    // Both workers are full: s3 is queued, not taken. It runs once s1 ends and frees its worker's slot.
    const s1Owner = owner("s1");
    s1.end();
    await s1.waitEnd(30_000);
    await s3.waitFor((r) => r.type === "output", 30_000);
    assert.equal(owner("s3"), s1Owner, "s3 went to the worker whose slot freed");
    assert.deepEqual(s3.outputs(), [{ id: "s3" }]);
    for (const c of [s2, s3]) {
      c.end();
      await c.waitEnd(30_000);
      c.close();
    }
    s1.close();
  });
});

describe("cluster: a worker lost mid-stream", { skip: kSkipWithoutNats }, () => {
  let cluster: TestCluster;
  const kLeaseMs = 1_500;
  before(async () => {
    cluster = await TestCluster.start({ ...kFunctions, "once.ts": kOnce }, "lost");
  });
  after(async () => {
    await cluster?.close();
  });

  async function expectedOutputs(xs: number[]): Promise<unknown[]> {
    const embedded = await startTestServer(kFunctions);
    try {
      return await runStream(embedded.wsUrl, "x", xs);
    } finally {
      await embedded.close();
    }
  }

  function checkNumbering(c: StreamClient, count: number): void {
    const ns = c.records.filter((r) => r.type === "output").map((r) => r.n);
    assert.deepEqual(ns, Array.from({ length: count }, (_, i) => i + 1), "every output once, in order, numbered as before");
  }

  it("kill -9 of the owner: another worker takes over, the producer's WebSocket stays up and sees every output exactly once", async () => {
    const xs = Array.from({ length: 12 }, (_, i) => i + 1);
    const expected = await expectedOutputs(xs);
    const workers = [await cluster.worker("lost-1", kLeaseMs), await cluster.worker("lost-2", kLeaseMs)];
    const gw = await cluster.gateway();
    const c = await StreamClient.connect(`${gw.wsUrl}/v1/functions/sum/streams/k1`);
    for (let i = 0; i < 6; i++) c.event({ x: xs[i] }, i + 1);
    await c.waitFor((r) => r.type === "output" && r.n === 6, 30_000);
    const owner = workers.find((w) => w.taken().includes("k1"))!;
    const other = workers.find((w) => w !== owner)!;
    assert.ok(owner, "a worker owns k1");
    const killedAt = Date.now();
    owner.signal("SIGKILL");
    for (let i = 6; i < xs.length; i++) c.event({ x: xs[i] }, i + 1);
    await c.waitFor((r) => r.type === "output" && r.n === 7, 60_000);
    const takeoverMs = Date.now() - killedAt;
    console.log(`# takeover time (kill -9 to next output, lease ${kLeaseMs} ms): ${takeoverMs} ms`);
    if (process.env.SFN_DEBUG) console.log(killedAt, JSON.stringify(other.lines().slice(-8)));
    c.end();
    const end = await c.waitEnd(30_000);
    assert.equal(end.status, "completed");
    assert.equal(c.closeCode, undefined, "the producer's connection stayed up until the end");
    assert.deepEqual(c.outputs(), expected);
    checkNumbering(c, expected.length);
    assert.ok(other.taken().includes("k1"), "the other worker took k1 over");
    await eventually(async () => (await clusterStatus(gw.url)).takeovers >= 1, 15_000, "status counts the takeover");
    c.close();
    // The next test picks its owner among its own workers.
    await Promise.all(workers.map((w) => w.stop()));
  });

  it("a function with replay: false fails a stream that lost its worker with STREAM_NOT_REPLAYABLE", async () => {
    const workers = [await cluster.worker("lost-5", kLeaseMs), await cluster.worker("lost-6", kLeaseMs)];
    const gw = await cluster.gateway();
    const c = await StreamClient.connect(`${gw.wsUrl}/v1/functions/once/streams/o1`);
    c.event({ i: 1 }, 1);
    await c.waitFor((r) => r.type === "output" && r.n === 1, 30_000);
    const owner = workers.find((w) => w.taken().includes("o1"))!;
    owner.signal("SIGKILL");
    c.event({ i: 2 }, 2);
    const end = await c.waitEnd(60_000);
    assert.equal(end.status, "failed");
    assert.equal((end.error as { code: string }).code, "STREAM_NOT_REPLAYABLE");
    assert.deepEqual(c.outputs(), [{ i: 1 }], "the output delivered before the loss stays; nothing is replayed");
    c.close();
    await Promise.all(workers.map((w) => w.stop()));
  });

  it("SIGSTOP of the owner past its lease: the successor takes over; woken, the old owner's outputs reach no one", async () => {
    const xs = Array.from({ length: 10 }, (_, i) => i + 1);
    const expected = await expectedOutputs(xs);
    const workers = [await cluster.worker("lost-3", kLeaseMs), await cluster.worker("lost-4", kLeaseMs)];
    const gw = await cluster.gateway();
    const c = await StreamClient.connect(`${gw.wsUrl}/v1/functions/sum/streams/z1`);
    for (let i = 0; i < 4; i++) c.event({ x: xs[i] }, i + 1);
    await c.waitFor((r) => r.type === "output" && r.n === 4, 30_000);
    const owner = workers.find((w) => w.taken().includes("z1"))!;
    const other = workers.find((w) => w !== owner)!;
    owner.signal("SIGSTOP");
    // Events sent while the owner sleeps reach its socket too: woken, it runs them and tries to write.
    for (let i = 4; i < 7; i++) c.event({ x: xs[i] }, i + 1);
    await c.waitFor((r) => r.type === "output" && r.n === 7, 60_000);
    assert.ok(other.taken().includes("z1"), "the other worker took z1 over");
    owner.signal("SIGCONT");
    await eventually(() => owner.lines().some((l) => l.msg === "stream lost to another worker" && l.stream === "z1"), 30_000, "the woken owner gives z1 up");
    for (let i = 7; i < xs.length; i++) c.event({ x: xs[i] }, i + 1);
    c.end();
    const end = await c.waitEnd(30_000);
    assert.equal(end.status, "completed");
    assert.deepEqual(c.outputs(), expected);
    checkNumbering(c, expected.length);
    c.close();
    // The output log: each number once (a zombie write that got through would repeat one), then the end.
    const h = await openCluster({ servers: cluster.nats.url, prefix: "lost", storage: "memory", leaseMs: kLeaseMs });
    try {
      const ns: number[] = [];
      for await (const r of h.outputs.read("sum", "z1")) ns.push(r.n);
      assert.deepEqual(ns, Array.from({ length: expected.length + 1 }, (_, i) => i + 1));
    } finally {
      await h.close();
    }
  });
});

// Takes one event, then sleeps: everything sent after it stays in flight.
const kSleeper = `import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  idleTimeoutMs: 120_000,
  stallTimeoutMs: 120_000,
  inboxLimit: 4,
  async *handler(events) {
    for await (const e of events) {
      yield e;
      await new Promise((r) => setTimeout(r, 120_000));
    }
  },
});
`;

describe("cluster: events in flight per stream are bounded", { skip: kSkipWithoutNats }, () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await TestCluster.start({ "sleeper.ts": kSleeper }, "flow");
  });
  after(async () => {
    await cluster?.close();
  });

  it("a producer far ahead of a busy handler is held to the function's inboxLimit (plus the hard margin), not buffered", async () => {
    await cluster.worker("flow-1");
    const gw = await cluster.gateway();
    const c = await StreamClient.connect(`${gw.wsUrl}/v1/functions/sleeper/streams/f1`);
    c.event({ i: 0 }, 1);
    await c.waitFor((r) => r.type === "output", 30_000);
    for (let i = 1; i <= 200; i++) c.event({ i }, i + 1);
    const status = async (): Promise<{ events: number; queued: number }> => (await call(`${gw.url}/v1/functions/sleeper/streams/f1`)).body as unknown as { events: number; queued: number };
    await eventually(async () => (await status()).queued >= 4, 15_000, "events pile up to the window");
    await new Promise((r) => setTimeout(r, 500));
    const st = await status();
    // As in embedded mode: up to the router's instance window (64) sent to the instance, then at most
    // 4 × inboxLimit more in flight between gateway and worker; the rest is refused or left unread.
    assert.ok(st.events <= 1 + 64 + 4 * 4, `events accepted: ${st.events}`);
    assert.ok(st.queued <= 4 * 4, `events in flight: ${st.queued}`);
    assert.ok(st.events < 201, "the producer was held back");
    c.close();
  });
});

