// Cluster-mode primitives on a nats-server of the bench's own (file store, loopback):
// windowed append throughput, append and fenced-append latency, direct-get read rate, and the
// consumer and subject counts with 10,000 streams opened and closed. Open = work item + one
// event; claim = owner create + fence + one output; close = end record, ack, purge, release.
//
//   npm run bench:cluster-primitives [-- --runs 3 --events 20000 --streams 10000]
import { openCluster } from "../src/cluster/open-cluster.js";
import type { ClusterHandle } from "../src/cluster/open-cluster.js";
import type { WorkItem } from "../src/cluster/work-queue.js";
import type { OutputWriter } from "../src/cluster/output-log.js";
import { readSubject } from "../src/cluster/direct-read.js";
import { TestNatsServer } from "../test/helpers/nats-server.js";

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const kRuns = arg("runs", 3);
const kEvents = arg("events", 20_000);
const kLatencyOps = arg("latency-ops", 2_000);
const kStreams = arg("streams", 10_000);
const payload = new TextEncoder().encode(JSON.stringify({ data: { reading: 42.5, sensor: "s-17", text: "x".repeat(180) } }));

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;

async function appendThroughput(h: ClusterHandle, run: number): Promise<number> {
  const t0 = performance.now();
  const all: Promise<unknown>[] = [];
  for (let i = 0; i < kEvents; i++) all.push(h.events.append("bench", `tp-${run}-${i % 100}`, Math.floor(i / 100) + 1, payload));
  await Promise.all(all);
  return kEvents / ((performance.now() - t0) / 1000);
}

async function appendLatency(h: ClusterHandle, run: number): Promise<number[]> {
  const ms: number[] = [];
  for (let p = 1; p <= kLatencyOps; p++) {
    const t = performance.now();
    await h.events.append("bench", `lat-${run}`, p, payload);
    ms.push(performance.now() - t);
  }
  return ms;
}

async function readRate(h: ClusterHandle, run: number): Promise<number> {
  const subject = h.events.subject("bench", `lat-${run}`);
  const t0 = performance.now();
  let n = 0;
  for await (const _ of readSubject(h.cluster.jsm, h.cluster.settings.names.events, subject)) n++;
  if (n !== kLatencyOps) throw new Error(`read ${n} events, expected ${kLatencyOps}`);
  return n / ((performance.now() - t0) / 1000);
}

async function fencedLatency(h: ClusterHandle, run: number): Promise<number[]> {
  const w = await h.outputs.fence("bench", `fenced-${run}`, { worker: "bench", epoch: 1 });
  const ms: number[] = [];
  for (let n = 1; n <= kLatencyOps; n++) {
    const t = performance.now();
    await w.write(n, payload);
    ms.push(performance.now() - t);
  }
  return ms;
}

async function counts(h: ClusterHandle): Promise<Record<string, number>> {
  const n = h.cluster.settings.names;
  const subjects = async (stream: string): Promise<number> => (await h.cluster.jsm.streams.info(stream)).state.num_subjects ?? 0;
  let consumers = 0;
  for (const s of [n.events, n.outputs, n.work, `KV_${n.owners}`]) consumers += (await h.cluster.jsm.streams.info(s)).state.consumer_count;
  return {
    consumers,
    eventSubjects: await subjects(n.events),
    outputSubjects: await subjects(n.outputs),
    ownerKeys: await subjects(`KV_${n.owners}`),
    workItems: (await h.cluster.jsm.streams.info(n.work)).state.messages,
  };
}

async function manyStreams(gw: ClusterHandle, wk: ClusterHandle): Promise<Record<string, unknown>> {
  const held: WorkItem[] = [];
  const loop = await wk.work.startLoop({ fn: "many", slots: kStreams, onItem: (i) => held.push(i) });
  const t0 = performance.now();
  const pool = async <T>(items: T[], f: (t: T) => Promise<void>): Promise<void> => {
    let next = 0;
    await Promise.all(Array.from({ length: 64 }, async () => {
      while (next < items.length) await f(items[next++]!);
    }));
  };
  const ids = Array.from({ length: kStreams }, (_, i) => `m.${i}`);
  await pool(ids, async (id) => {
    await gw.work.publishOpen("many", id);
    await gw.events.append("many", id, 1, payload);
  });
  while (held.length < kStreams) await new Promise((r) => setTimeout(r, 20));
  const opened = performance.now();
  const writers = new Map<string, OutputWriter>();
  await pool(held, async (item) => {
    const claim = await wk.owners.acquire(item.fn, item.streamId, "bench");
    const w = await wk.outputs.fence(item.fn, item.streamId, { worker: "bench", epoch: claim!.epoch });
    await w.write(1, payload);
    writers.set(item.streamId, w);
  });
  const claimed = performance.now();
  const live = await counts(gw);
  await pool([...held], async (item) => {
    await writers.get(item.streamId)!.end("{}");
    await item.done();
    await wk.events.purge(item.fn, item.streamId);
    await wk.owners.release(item.fn, item.streamId);
  });
  const closed = performance.now();
  await loop.stop();
  const after = await counts(gw);
  const sec = (a: number, b: number): number => Math.round((b - a) / 10) / 100;
  return { streams: kStreams, openSeconds: sec(t0, opened), claimSeconds: sec(opened, claimed), closeSeconds: sec(claimed, closed), whileLive: live, afterClose: after };
}

const nats = await TestNatsServer.start();
try {
  const h = await openCluster({ servers: nats.url, prefix: "bench", eventLog: { maxInFlight: 256 } });
  const tput: number[] = [];
  const lat: number[] = [];
  const reads: number[] = [];
  const fenced: number[] = [];
  const latP99: number[] = [];
  const fencedP99: number[] = [];
  for (let run = 0; run < kRuns; run++) {
    tput.push(await appendThroughput(h, run));
    const l = await appendLatency(h, run);
    lat.push(pct(l, 0.5));
    latP99.push(pct(l, 0.99));
    reads.push(await readRate(h, run));
    const f = await fencedLatency(h, run);
    fenced.push(pct(f, 0.5));
    fencedP99.push(pct(f, 0.99));
    process.stderr.write(`run ${run + 1}/${kRuns} done\n`);
  }
  const gw = await openCluster({ servers: nats.url, prefix: "many" });
  const wk = await openCluster({ servers: nats.url, prefix: "many" });
  const many = await manyStreams(gw, wk);
  await gw.close();
  await wk.close();
  await h.close();
  const r = (x: number): number => Math.round(x);
  const d = (x: number): number => Math.round(x * 1000) / 1000;
  console.log(JSON.stringify({
    server: "nats-server (this machine's), file store, loopback",
    runs: kRuns,
    appendThroughputPerSec: { median: r(median(tput)), runs: tput.map(r), events: kEvents, window: 256, bytes: payload.length },
    appendLatencyMs: { p50: d(median(lat)), p99: d(median(latP99)) },
    directGetReadsPerSec: { median: r(median(reads)), runs: reads.map(r) },
    fencedAppendLatencyMs: { p50: d(median(fenced)), p99: d(median(fencedP99)) },
    many,
  }, null, 2));
} finally {
  await nats.stop();
}
