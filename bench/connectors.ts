// `npm run bench -- --connectors`: messages per second from MQTT topics and NATS subjects into
// a handler and its outputs back out to the broker, against the WebSocket path in the same run
// and on the same server (the `streamfn serve` binary, in its own process). Each run sends
// S streams × E events; the figure is events whose output came back, per second of wall time
// from the first send to the last output. CPU per event of the server, the broker and this
// load generator (the client) shows which of them bounds a path.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, connect as netConnect } from "node:net";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { connect as natsConnect } from "@nats-io/transport-node";
import mqtt from "mqtt";
import { connectMany, runFlow } from "./load.js";
import type { Payload } from "./load.js";
import { fmt, median } from "./stats.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const kMain = join(root, "dist", "src", "cli", "main.js");

const kFunction = `import { defineStreamFunction } from "streamfn";
// Every event back out as an output: the connector's path in and out, nothing else.
export default defineStreamFunction({
  idleTimeoutMs: 120000,
  keepAliveMs: 60000,
  sources: [
    { mqtt: "bench/+/in", output: { topic: "bench-out/{streamId}", qos: 1 } },
    { nats: "bench.*.in", output: { topic: "bench-out.{streamId}" } },
  ],
  async *handler(events) {
    for await (const e of events) yield e;
  },
});
`;

export interface ConnectorBenchOptions {
  runs: number;
  streams: number;
  events: number;
  /** Messages in flight from the publisher (MQTT QoS 1 publishes awaiting PUBACK; NATS between flushes). */
  window: number;
  write: boolean;
  /** Run the server under --cpu-prof, profiles into this directory. */
  profileDir?: string;
}

interface PathFigures {
  eventsPerSec: number;
  serverCpuUs: number;
  brokerCpuUs: number;
  clientCpuUs: number;
}

const kPaths = ["websocket", "mqtt", "nats"] as const;
type PathName = (typeof kPaths)[number];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitPort(port: number, child: ChildProcess, what: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`${what} exited (${child.exitCode})`);
    const ok = await new Promise<boolean>((r) => {
      const s = netConnect({ host: "127.0.0.1", port });
      s.once("connect", () => (s.destroy(), r(true)));
      s.once("error", () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not listen on ${port}`);
}

/** utime + stime of a process, µs (from /proc; 0 where there is no /proc). */
function cpuUs(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return 0;
  }
}

function selfCpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  const t = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(t);
}

/** The event: ~100 bytes of JSON, the shape of a sensor reading. */
function eventBody(i: number): string {
  return JSON.stringify({ seq: i + 1, t: i * 10, device: "sensor-0042", value: Math.round(Math.sin(i) * 1e4) / 100, unit: "mm/s" });
}

export async function runConnectorBench(o: ConnectorBenchOptions, log: (line: string) => void): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "streamfn-bench-conn-"));
  const children: ChildProcess[] = [];
  const loadBefore = loadavg();
  try {
    log(`connectors bench: ${o.runs} runs of ${o.streams} streams × ${o.events} events, window ${o.window}; load average ${loadBefore.map((l) => l.toFixed(2)).join(" ")}`);
    const mqttPort = await freePort();
    await writeFile(join(dir, "mosquitto.conf"), `listener ${mqttPort} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n`);
    const mosq = spawn("/usr/sbin/mosquitto", ["-c", join(dir, "mosquitto.conf")], { stdio: "ignore" });
    children.push(mosq);
    await waitPort(mqttPort, mosq, "mosquitto");
    const natsPort = await freePort();
    const nats = spawn("nats-server", ["-a", "127.0.0.1", "-p", String(natsPort)], { stdio: "ignore" });
    children.push(nats);
    await waitPort(natsPort, nats, "nats-server");
    const fnDir = join(dir, "functions");
    await (await import("node:fs/promises")).mkdir(fnDir);
    await writeFile(join(fnDir, "relay.ts"), kFunction);
    const nodeFlags = o.profileDir ? ["--cpu-prof", "--cpu-prof-interval=100", `--cpu-prof-dir=${o.profileDir}`] : [];
    const server = spawn(process.execPath, [...nodeFlags, kMain, "serve", fnDir, "--port", "0", "--no-watch", "--mqtt", `mqtt://127.0.0.1:${mqttPort}`, "--nats", `nats://127.0.0.1:${natsPort}`], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    children.push(server);
    const url = await new Promise<string>((resolve, reject) => {
      const lines = createInterface({ input: server.stdout! });
      lines.on("line", (line) => {
        const m = /streamfn listening on (http:\/\/[^ ]+)/.exec(line);
        if (m) resolve(m[1]!);
      });
      server.once("exit", (code) => reject(new Error(`streamfn serve exited (${code})`)));
    });
    log(`server pid ${server.pid} at ${url}; mosquitto pid ${mosq.pid}; nats-server pid ${nats.pid}`);
    const wsBase = url.replace(/^http/, "ws");

    const mq = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { protocolVersion: 5 });
    const nc = await natsConnect({ servers: `nats://127.0.0.1:${natsPort}` });
    let outputs = 0;
    let onOutput = (): void => {};
    mq.on("message", () => {
      outputs++;
      onOutput();
    });
    await mq.subscribeAsync("bench-out/#", { qos: 1 });
    nc.subscribe("bench-out.>", {
      callback: () => {
        outputs++;
        onOutput();
      },
    });
    await nc.flush();
    const total = o.streams * o.events;
    const untilOutputs = (n: number): Promise<void> =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`only ${outputs} of ${n} outputs within 120 s`)), 120_000);
        const check = (): void => {
          if (outputs >= n) {
            clearTimeout(timer);
            onOutput = () => {};
            resolve();
          }
        };
        onOutput = check;
        check();
      });

    const publishMqtt = async (run: string): Promise<void> => {
      let inFlight = 0;
      let wake: (() => void) | undefined;
      for (let i = 0; i < o.events; i++) {
        for (let s = 0; s < o.streams; s++) {
          while (inFlight >= o.window) await new Promise<void>((r) => (wake = r));
          inFlight++;
          mq.publish(`bench/${run}s${s}/in`, eventBody(i), { qos: 1 }, () => {
            inFlight--;
            const w = wake;
            wake = undefined;
            w?.();
          });
        }
      }
    };
    const publishNats = async (run: string): Promise<void> => {
      let n = 0;
      for (let i = 0; i < o.events; i++) {
        for (let s = 0; s < o.streams; s++) {
          nc.publish(`bench.${run}s${s}.in`, eventBody(i));
          // Core NATS has no acks: a round trip every window keeps the publisher from running ahead of the server without bound.
          if (++n % o.window === 0) await nc.flush();
        }
      }
      await nc.flush();
    };
    const wsPayload: Payload = { kind: "json", frame: Buffer.from(JSON.stringify({ data: JSON.parse(eventBody(0)) })) };

    const measure = async (path: PathName, run: number): Promise<PathFigures> => {
      const tag = `r${run}${path[0]}`;
      const before = { server: cpuUs(server.pid), broker: cpuUs(path === "mqtt" ? mosq.pid : path === "nats" ? nats.pid : undefined), client: selfCpuUs() };
      const t0 = performance.now();
      if (path === "websocket") {
        const producers = await connectMany(() => `${wsBase}/v1/functions/relay/streams`, o.streams, 50);
        const t1 = performance.now();
        await runFlow(producers, o.events, Math.min(o.window, 128), wsPayload, { start: async () => {}, stop: async () => {} });
        const wallMs = performance.now() - t1;
        const after = { server: cpuUs(server.pid), client: selfCpuUs() };
        await Promise.all(producers.map((p) => p.end()));
        return { eventsPerSec: (total / wallMs) * 1000, serverCpuUs: (after.server - before.server) / total, brokerCpuUs: 0, clientCpuUs: (after.client - before.client) / total };
      }
      const target = outputs + total;
      const done = untilOutputs(target);
      if (path === "mqtt") await publishMqtt(tag);
      else await publishNats(tag);
      await done;
      const wallMs = performance.now() - t0;
      const brokerPid = path === "mqtt" ? mosq.pid : nats.pid;
      return {
        eventsPerSec: (total / wallMs) * 1000,
        serverCpuUs: (cpuUs(server.pid) - before.server) / total,
        brokerCpuUs: (cpuUs(brokerPid) - before.broker) / total,
        clientCpuUs: (selfCpuUs() - before.client) / total,
      };
    };

    // Untimed: instances started, JIT warm on every path.
    for (const path of kPaths) await measure(path, 0);
    const results: Record<PathName, PathFigures[]> = { websocket: [], mqtt: [], nats: [] };
    for (let run = 1; run <= o.runs; run++) {
      for (const path of kPaths) {
        const f = await measure(path, run);
        results[path].push(f);
        log(`[run ${run}/${o.runs}] ${path}: ${fmt(f.eventsPerSec)} events/s; CPU per event: server ${fmt(f.serverCpuUs)} µs, broker ${fmt(f.brokerCpuUs)} µs, client ${fmt(f.clientCpuUs)} µs`);
      }
    }
    await mq.endAsync();
    await nc.close();
    const loadAfter = loadavg();
    const med = (path: PathName, k: keyof PathFigures): number => median(results[path].map((f) => f[k]));
    const rows = kPaths.map(
      (p) => `| ${p === "websocket" ? "WebSocket (window " + Math.min(o.window, 128) + ")" : p === "mqtt" ? "MQTT QoS 1 in and out (mosquitto)" : "NATS core in and out (nats-server)"} | ${fmt(med(p, "eventsPerSec"))} | ${fmt(med(p, "serverCpuUs"))} | ${p === "websocket" ? "–" : fmt(med(p, "brokerCpuUs"))} | ${fmt(med(p, "clientCpuUs"))} |`,
    );
    const command = `npm run bench -- --connectors${o.runs !== 3 ? ` --runs ${o.runs}` : ""}`;
    const markdown = [
      "## Connectors",
      "",
      `Command: \`${command}\`. ${o.runs} runs (medians) of ${o.streams} streams × ${o.events} events (${total} events, ~100-byte JSON readings) into a handler that yields each event back, on one \`streamfn serve\` process; publisher window ${o.window}. ` +
        `Load average ${loadBefore.map((l) => l.toFixed(2)).join(" ")} before, ${loadAfter.map((l) => l.toFixed(2)).join(" ")} after (${(await import("node:os")).cpus().length} cores, shared). ${new Date().toISOString().slice(0, 10)}.`,
      "",
      "| path | events/s (in and back out) | server CPU µs/event | broker CPU µs/event | load generator CPU µs/event |",
      "|---|---:|---:|---:|---:|",
      ...rows,
      "",
    ].join("\n");
    console.log(`\n${markdown}`);
    if (o.write) {
      const path = join(root, "docs", "benchmarks.md");
      const doc = await readFile(path, "utf8");
      const start = doc.indexOf("## Connectors\n");
      let next: string;
      if (start < 0) next = `${doc.trimEnd()}\n\n${markdown}`;
      else {
        const end = doc.indexOf("\n## ", start + 3);
        const rest = end < 0 ? "" : doc.slice(end);
        // Keep any prose after the table (the analysis) up to the next section.
        const section = doc.slice(start, end < 0 ? undefined : end);
        const analysis = section.indexOf("\n### ");
        next = doc.slice(0, start) + markdown + (analysis >= 0 ? section.slice(analysis) : "") + rest;
      }
      await writeFile(path, next.endsWith("\n") ? next : `${next}\n`);
      log(`wrote ${path}`);
    }
  } finally {
    for (const c of children.reverse()) await stopChild(c);
    await rm(dir, { recursive: true, force: true });
  }
}
