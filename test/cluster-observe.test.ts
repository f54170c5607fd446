import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { kSkipWithoutNats } from "./helpers/nats-server.js";
import { TestCluster } from "./helpers/cluster-procs.js";
import type { ClusterProc } from "./helpers/cluster-procs.js";
import { StreamClient } from "./helpers/ws-client.js";
import { eventually } from "./helpers/server.js";
import { call } from "./helpers/http-client.js";

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

/** Sum of the samples of `name` whose labels contain every `label="value"` given. */
function metric(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  let sum: number | undefined;
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const ls = m[2] ?? "";
    if (!Object.entries(labels).every(([k, v]) => ls.includes(`${k}="${v}"`))) continue;
    sum = (sum ?? 0) + Number(m[3]);
  }
  return sum;
}

async function metricsOf(url: string): Promise<string> {
  const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(30_000) });
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /text\/plain/);
  return res.text();
}

function urlOf(p: ClusterProc): string {
  const ready = p.lines().find((l) => l.msg === "worker ready");
  assert.ok(ready && typeof ready.url === "string", "the worker logs its endpoint's URL");
  return ready.url as string;
}

interface WorkerDoc {
  worker: string;
  stale: boolean;
  ageMs: number;
  takeovers: number;
  functions: { name: string; slots: number; active: number }[];
  streams: unknown[];
}

describe("watching a cluster: worker and gateway /metrics, status and dashboard", { skip: kSkipWithoutNats }, () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await TestCluster.start({ "one.ts": kOneSlot }, "observe");
  });
  after(async () => {
    await cluster?.close();
  });

  it("counts streams, work lag and a kill -9 takeover; the gateway lists the dead worker as stale", async () => {
    const wa = await cluster.worker("obs-a", 3_000, ["--port", "0"]);
    const wb = await cluster.worker("obs-b", 3_000, ["--port", "0"]);
    const urls = new Map([
      ["obs-a", urlOf(wa)],
      ["obs-b", urlOf(wb)],
    ]);
    const gw = await cluster.gateway();
    for (const u of urls.values()) assert.deepEqual((await call(`${u}/healthz`)).body, { ok: true });

    // Idle: nothing waits.
    await eventually(async () => metric(await metricsOf(gw.url), "streamfn_cluster_work_pending", { function: "one" }) === 0, 15_000, "gateway: work pending 0 when idle");

    const open = async (id: string, n = 1): Promise<StreamClient> => {
      const c = await StreamClient.connect(`${gw.wsUrl}/v1/functions/one/streams/${id}`);
      c.event({ id, n }, n);
      return c;
    };
    const owner = (id: string): "obs-a" | "obs-b" | undefined => (wa.taken().includes(id) ? "obs-a" : wb.taken().includes(id) ? "obs-b" : undefined);
    const s1 = await open("s1");
    await s1.waitFor((r) => r.type === "output", 30_000);
    const s2 = await open("s2");
    await s2.waitFor((r) => r.type === "output", 30_000);
    assert.notEqual(owner("s1"), owner("s2"));

    // Both workers' one slot is taken: s3 waits in the queue, and the lag shows it on every process.
    const s3 = await open("s3");
    await eventually(async () => (metric(await metricsOf(gw.url), "streamfn_cluster_work_pending", { function: "one" }) ?? 0) >= 1, 15_000, "gateway: work pending > 0 while no slot is free");
    for (const u of urls.values()) {
      const text = await metricsOf(u);
      assert.ok((metric(text, "streamfn_cluster_work_pending", { function: "one" }) ?? 0) >= 1, "worker: work pending > 0 while no slot is free");
      assert.equal(metric(text, "streamfn_cluster_slots", { function: "one" }), 1);
      assert.equal(metric(text, "streamfn_cluster_slots_active", { function: "one" }), 1);
      assert.equal(metric(text, "streamfn_cluster_streams_owned", { function: "one" }), 1);
    }

    // s1 ends: its worker takes s3. s2 ends: the other worker is free for the takeover.
    s1.end();
    await s1.waitEnd(30_000);
    await s3.waitFor((r) => r.type === "output", 30_000);
    s2.end();
    await s2.waitEnd(30_000);
    const dead = owner("s3")!;
    const survivor = dead === "obs-a" ? "obs-b" : "obs-a";
    (dead === "obs-a" ? wa : wb).signal("SIGKILL");
    s3.event({ id: "s3", n: 2 }, 2);
    await s3.waitFor((r) => r.type === "output" && r.n === 2, 60_000);
    s3.end();
    const end = await s3.waitEnd(30_000);
    assert.equal(end.status, "completed");
    for (const c of [s1, s2, s3]) c.close();

    const sUrl = urls.get(survivor)!;
    await eventually(async () => {
      const text = await metricsOf(sUrl);
      return (
        (metric(text, "streamfn_cluster_takeovers_total", { worker: survivor }) ?? 0) >= 1 &&
        (metric(text, "streamfn_cluster_events_replayed_total") ?? 0) >= 1 &&
        metric(text, "streamfn_cluster_work_pending", { function: "one" }) === 0 &&
        metric(text, "streamfn_cluster_streams_owned", { function: "one" }) === 0
      );
    }, 15_000, "survivor: a takeover, replayed events, no lag, no stream held");
    const sText = await metricsOf(sUrl);
    // The embedded router's metrics work in a worker: s2 (or s1) and the taken-over s3 ran here.
    assert.ok((metric(sText, "streamfn_streams_opened_total", { function: "one" }) ?? 0) >= 2, sText);
    assert.ok((metric(sText, "streamfn_outputs_out_total", { function: "one" }) ?? 0) >= 2);
    assert.ok((metric(sText, "streamfn_streams_closed_total", { function: "one", status: "completed" }) ?? 0) >= 2);

    const st = (await call(`${sUrl}/v1/status`)).body as unknown as WorkerDoc & { fenced: number; replayed: number; functions: { workPending: number }[] };
    assert.equal(st.worker, survivor);
    assert.ok(st.takeovers >= 1);
    assert.equal(st.functions[0]?.slots, 1);
    assert.equal(st.functions[0]?.workPending, 0);

    const gText = await metricsOf(gw.url);
    assert.equal(metric(gText, "streamfn_cluster_streams_opened_total", { function: "one" }), 3, gText);
    assert.ok((metric(gText, "streamfn_cluster_events_appended_total", { function: "one" }) ?? 0) >= 4 + 3, "4 events and 3 end marks appended");
    assert.ok((metric(gText, "streamfn_cluster_outputs_relayed_total", { function: "one" }) ?? 0) >= 4);
    assert.ok((metric(gText, "streamfn_cluster_append_latency_seconds_count", { function: "one" }) ?? 0) >= 7);
    assert.equal(metric(gText, "streamfn_cluster_work_pending", { function: "one" }), 0);
    assert.equal(metric(gText, "streamfn_cluster_streams_live", { function: "one" }) ?? 0, 0);

    // The gateway's status: both workers, the killed one stale (its heartbeat stopped), the survivor fresh.
    await eventually(async () => {
      const doc = (await call(`${gw.url}/v1/status`)).body as unknown as { workers: WorkerDoc[]; takeovers: number };
      const by = new Map(doc.workers.map((w) => [w.worker, w]));
      const d = by.get(dead);
      const s = by.get(survivor);
      return d?.stale === true && s?.stale === false && s.takeovers >= 1 && s.functions[0]?.slots === 1 && typeof s.ageMs === "number" && doc.takeovers >= 1;
    }, 20_000, "gateway status: the dead worker stale, the survivor fresh with its takeover");

    const page = await fetch(`${gw.url}/`, { signal: AbortSignal.timeout(30_000) });
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /id="cluster"/);
    assert.match(html, /function clusterTable/);
    assert.match(html, /heartbeat/);
  });

  it("a worker without --port serves no endpoint; a bad --port is refused by name", async () => {
    const w = await cluster.worker("obs-c");
    const ready = w.lines().find((l) => l.msg === "worker ready");
    assert.equal(ready?.url, undefined);
    await w.stop();
    const { spawnSync } = await import("node:child_process");
    const { fileURLToPath } = await import("node:url");
    const cli = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
    const r = spawnSync(process.execPath, [cli, "worker", "--nats", cluster.nats.url, "--port", "70000", cluster.dir], { encoding: "utf8" });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /INVALID_OPTIONS.*--port/);
  });
});
