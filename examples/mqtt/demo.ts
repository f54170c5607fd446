// `npm run demo:mqtt [-- options]`: IoT sensor bursts over MQTT. Starts a mosquitto of its own
// (unless --broker names one), serves examples/functions with that broker, and simulates many
// sensors: each publishes a burst of readings on `sensors/<id>/readings` (some with a spike),
// the sensor-burst function sees each burst as one stream, and the alerts it publishes on
// `alerts/<id>` are printed here as they arrive.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import mqtt from "mqtt";
import { StreamfnServer } from "../../src/server/server.js";
import { createServerLogger } from "../../src/server/logger.js";

const usage = `usage: npm run demo:mqtt -- [--sensors 40] [--readings 60] [--interval-ms 20] [--broker mqtt://127.0.0.1:1883]

  --sensors      sensors bursting at once (default 40); every fourth one has a spike
  --readings     readings per burst (default 60)
  --interval-ms  time between one sensor's readings (default 20)
  --broker       an MQTT broker to use instead of starting mosquitto (/usr/sbin/mosquitto)`;

const kFunctionsDir = fileURLToPath(new URL("../../../examples/functions", import.meta.url));

export interface DemoOptions {
  sensors: number;
  readings: number;
  intervalMs: number;
  broker?: string;
}

export interface DemoResult {
  anomalies: { device: string; peakZ: number; at: number }[];
  summaries: { device: string; readings: number; anomalies: number; endReason: string }[];
}

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

async function startMosquitto(): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "streamfn-demo-mqtt-"));
  const conf = join(dir, "mosquitto.conf");
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\n`);
  let child: ChildProcess;
  try {
    child = spawn("/usr/sbin/mosquitto", ["-c", conf], { stdio: "ignore" });
  } catch (err) {
    throw new Error(`cannot start mosquitto (apt-get install mosquitto, or pass --broker): ${(err as Error).message}`);
  }
  const failed = new Promise<never>((_, reject) => {
    child.once("error", (err) => reject(new Error(`cannot start mosquitto (apt-get install mosquitto, or pass --broker): ${err.message}`)));
    child.once("exit", (code) => reject(new Error(`mosquitto exited (${code})`)));
  });
  const up = (async () => {
    for (let i = 0; i < 200; i++) {
      const ok = await new Promise<boolean>((r) => {
        const s = netConnect({ host: "127.0.0.1", port });
        s.once("connect", () => (s.destroy(), r(true)));
        s.once("error", () => r(false));
      });
      if (ok) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error("mosquitto did not start listening");
  })();
  await Promise.race([up, failed]);
  failed.catch(() => {});
  return {
    url: `mqtt://127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A calm signal around `base`; a sensor with a spike jumps by 8 units for five readings mid-burst. */
function reading(i: number, base: number, spike: boolean, n: number): number {
  const calm = base + 0.3 * Math.sin(i * 1.3 + base);
  const mid = Math.floor(n / 2);
  return spike && i >= mid && i < mid + 5 ? calm + 8 : calm;
}

/** Runs the demo; `print` gets each line as it happens. */
export async function runMqttDemo(o: DemoOptions, print: (line: string) => void = console.log): Promise<DemoResult> {
  const broker = o.broker ? { url: o.broker, stop: async () => {} } : await startMosquitto();
  const result: DemoResult = { anomalies: [], summaries: [] };
  let server: StreamfnServer | undefined;
  let client: mqtt.MqttClient | undefined;
  try {
    print(`broker ${broker.url}${o.broker ? "" : " (mosquitto started for the demo)"}`);
    server = await StreamfnServer.start({
      functionsDir: kFunctionsDir,
      port: 0,
      graceMs: 3_000,
      logger: createServerLogger({ destination: { write() {} } }),
      connectors: { mqtt: broker.url },
    });
    const src = server.connectors.status().sources.find((s) => s.function === "sensor-burst");
    print(`streamfn ${server.url}: sensor-burst bound to ${src?.topic} (${src?.connected ? "subscribed" : "not subscribed"}), alerts on alerts/<sensor>`);
    client = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
    const done = new Set<string>();
    let allDone: () => void = () => {};
    const finished = new Promise<void>((r) => (allDone = r));
    client.on("message", (topic, payload) => {
      const device = topic.split("/")[1]!;
      const out = JSON.parse(payload.toString()) as Record<string, unknown>;
      if (out.type === "anomaly") {
        const peak = out.peak as { z: number; value: number; i: number };
        result.anomalies.push({ device, peakZ: peak.z, at: peak.i });
        print(`ALERT   ${device.padEnd(10)} excursion at readings ${(out.start as { i: number }).i}-${(out.end as { i: number }).i}, peak ${peak.value.toFixed(2)} (z ${peak.z}), closed by ${out.closedBy}`);
      } else if (out.type === "summary") {
        result.summaries.push({ device, readings: out.readings as number, anomalies: out.anomalies as number, endReason: out.endReason as string });
        done.add(device);
        if (done.size === o.sensors) allDone();
      }
    });
    await client.subscribeAsync("alerts/#", { qos: 1 });
    const started = performance.now();
    print(`${o.sensors} sensors bursting: ${o.readings} readings each, every ${o.intervalMs} ms; every fourth sensor spikes mid-burst`);
    const sensors = Array.from({ length: o.sensors }, (_, k) => `sensor-${String(k + 1).padStart(3, "0")}`);
    await Promise.all(
      sensors.map(async (id, k) => {
        // Sensors wake at slightly different moments, as a fleet does.
        await new Promise((r) => setTimeout(r, (k * 7) % 50));
        await client!.publishAsync(`sensors/${id}/readings`, JSON.stringify({ device: id }), { qos: 1 });
        for (let i = 0; i < o.readings; i++) {
          const value = reading(i, 20 + (k % 5), k % 4 === 0, o.readings);
          await client!.publishAsync(`sensors/${id}/readings`, JSON.stringify({ t: i * o.intervalMs, value: Math.round(value * 1000) / 1000, seq: i + 2 }), { qos: 1 });
          await new Promise((r) => setTimeout(r, o.intervalMs));
        }
        // Half the sensors say when they are done; the others just go quiet (the stream ends 2 s later, idle).
        if (k % 2 === 0) await client!.publishAsync(`sensors/${id}/end`, "", { qos: 1 });
      }),
    );
    print(`all bursts sent in ${Math.round(performance.now() - started)} ms; waiting for the summaries (quiet sensors end after 2 s idle)…`);
    const timeout = setTimeout(allDone, 15_000);
    await finished;
    clearTimeout(timeout);
    const spiking = sensors.filter((_, k) => k % 4 === 0).length;
    const byReason = result.summaries.reduce<Record<string, number>>((m, s) => ((m[s.endReason] = (m[s.endReason] ?? 0) + 1), m), {});
    print(
      `done: ${result.summaries.length}/${o.sensors} bursts summarised (${Object.entries(byReason).map(([r, n]) => `${n} ${r}`).join(", ")}), ` +
        `${result.anomalies.length} alert(s) for ${spiking} spiking sensor(s)`,
    );
    const st = server.connectors.status().sources.find((s) => s.function === "sensor-burst")!;
    print(`source: ${st.messagesIn} messages in, ${st.streamsOpened} streams opened, ${st.parseFailures} parse failures, ${st.outputs} outputs published`);
    return result;
  } finally {
    await client?.endAsync().catch(() => {});
    await server?.close();
    await broker.stop();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        sensors: { type: "string", default: "40" },
        readings: { type: "string", default: "60" },
        "interval-ms": { type: "string", default: "20" },
        broker: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    console.error(`${(err as Error).message}\n${usage}`);
    process.exit(2);
  }
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  const num = (v: string, name: string, min: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) {
      console.error(`--${name} must be an integer >= ${min}, got ${JSON.stringify(v)}\n${usage}`);
      process.exit(2);
    }
    return n;
  };
  runMqttDemo({
    sensors: num(values.sensors, "sensors", 1),
    readings: num(values.readings, "readings", 12),
    intervalMs: num(values["interval-ms"], "interval-ms", 0),
    broker: values.broker,
  }).then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(`demo:mqtt: ${(err as Error).message}`);
      process.exit(1);
    },
  );
}
