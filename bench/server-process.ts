// The benchmark's server: a real StreamfnServer in its own process, so its CPU time and memory
// are its own. Beside it, on another port, the inline reference server (inline-server.ts). It answers the load generator's questions (CPU, memory, instances) over the
// fork IPC channel; nothing here is part of the product.
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import type { StreamFunctionOptions } from "../src/api/types.js";
import { StreamfnServer } from "../src/server/server.js";
import { createServerLogger } from "../src/server/logger.js";
import { loadFunction } from "./floor.js";
import { startInlineServer } from "./inline-server.js";

export interface ServerStats {
  /** process.cpuUsage(): every thread of the process (router, instances, libuv), µs. */
  userUs: number;
  systemUs: number;
  /** The main (router + gateway) thread alone, from /proc, in µs (10 ms resolution). */
  mainThreadUs: number;
  /** Voluntary context switches of all threads: how often they blocked and were woken again. */
  wakeups: number;
  rssBytes: number;
  /** Peak RSS since the process started (VmHWM). */
  peakRssBytes: number;
  heapUsedBytes: number;
  liveStreams: number;
  connections: number;
  functions: Record<string, { instances: number; coldStarts: number }>;
}

export type ToServer = { type: "stats"; id: number } | { type: "stop" };
export type FromServer = { type: "ready"; port: number; inlinePort: number } | { type: "stats"; id: number; stats: ServerStats };

const [functionsDir, cacheDir, overridesJson] = process.argv.slice(2);
if (!functionsDir || !cacheDir || !process.send) {
  throw new Error("usage: forked with IPC, args <functionsDir> <cacheDir> [overrides JSON]");
}
const send = process.send.bind(process) as (m: FromServer) => boolean;

const tickUs = 1e6 / clockTicksPerSecond();

const server = await StreamfnServer.start({
  functionsDir,
  cacheDir,
  port: 0,
  host: "127.0.0.1",
  graceMs: 0,
  overrides: overridesJson ? (JSON.parse(overridesJson) as Record<string, StreamFunctionOptions>) : undefined,
  logger: createServerLogger({ destination: process.stderr, pretty: true }),
});

const inline = await startInlineServer(await loadFunction(join(functionsDir, "echo.ts"), "echo"));

process.on("message", (msg: ToServer) => {
  if (msg.type === "stats") {
    send({ type: "stats", id: msg.id, stats: collect() });
  } else if (msg.type === "stop") {
    void Promise.all([server.close(), inline.close()]).then(() => {
      // A normal exit, so --cpu-prof writes its profiles.
      process.disconnect();
      process.exit(0);
    });
  }
});
process.on("disconnect", () => {
  // The load generator went away without a stop: do not linger.
  void server.close().then(() => process.exit(0));
});

send({ type: "ready", port: server.port, inlinePort: inline.port });

function collect(): ServerStats {
  const cpu = process.cpuUsage();
  const mem = process.memoryUsage();
  const functions: ServerStats["functions"] = {};
  for (const fn of server.registry.functions()) {
    let instances = 0;
    let coldStarts = 0;
    for (const pool of fn.current ? [fn.current, ...fn.retiring] : fn.retiring) {
      instances += pool.instances.size;
      coldStarts += pool.coldStarts;
    }
    functions[fn.name] = { instances, coldStarts };
  }
  return {
    userUs: cpu.user,
    systemUs: cpu.system,
    mainThreadUs: mainThreadTicks() * tickUs,
    wakeups: voluntarySwitches(),
    rssBytes: mem.rss,
    peakRssBytes: peakRss(),
    heapUsedBytes: mem.heapUsed,
    liveStreams: server.router.liveCount,
    connections: server.gateway.websocket.connections,
    functions,
  };
}

function mainThreadTicks(): number {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces) start at ") ".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of stat)
  } catch {
    return Number.NaN;
  }
}

function voluntarySwitches(): number {
  let sum = 0;
  try {
    for (const tid of readdirSync("/proc/self/task")) {
      try {
        const m = /voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/self/task/${tid}/status`, "utf8"));
        if (m) sum += Number(m[1]);
      } catch {
        // the thread ended meanwhile
      }
    }
  } catch {
    return Number.NaN;
  }
  return sum;
}

function peakRss(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
    return m ? Number(m[1]) * 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

function clockTicksPerSecond(): number {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
}
