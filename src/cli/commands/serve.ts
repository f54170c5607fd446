import type { Command } from "commander";
import { Option } from "commander";
import type { StreamFunctionOptions } from "../../api/types.js";
// Types only at the top: every command module is loaded for `streamfn --help`, and the
// server (esbuild, pino, ws, prom-client) is loaded by the commands that run one.
import type { StreamfnServer, ServerOptions } from "../../server/server.js";
import type { ServerLogger } from "../../server/logger.js";
import type { RateLimits } from "../../auth/rate-limits.js";
import type { SpareThreads } from "../../instances/spare-threads.js";
import { kDefaultOptions } from "../../api/options.js";
import { applySetting, parseCount, parseLimit, parseMs, parsePort, readConfigFile, unknownFunctionWarnings } from "../config.js";
import type { FunctionSetting } from "../config.js";
import { collect, selfCommand, withExample } from "../util.js";

/** How long running streams get to finish on SIGINT/SIGTERM unless --grace-ms or the config says. */
export const kDefaultGraceMs = 10_000;

export function registerServe(program: Command): void {
  const cmd = addServeFlags(
    program.command("serve").description("serve every function file in a directory (one file = one function)"),
  )
    .option("--no-watch", "do not redeploy functions when their files (or files they import) change, appear or go")
    .action(async (dir: string, opts: ServeFlags) => {
      // The server's own records of its start-up wait until the line for a person is out.
      const serverLog = await consoleLogger();
      let server: StreamfnServer;
      try {
        server = await startFromFlags(dir, opts, { logger: serverLog.logger });
      } catch (err) {
        serverLog.release(); // a server that did not start still shows what it logged before its error
        throw err;
      }
      // Before the announcement: whoever waits for it may signal at once.
      stopOnSignals(server, server.graceMs);
      announce(server, Date.now() - server.startedAt);
      serverLog.release();
    });
  withExample(cmd, "streamfn serve ./functions --port 8080 --set idleTimeoutMs=5000");
}

/** The directory argument and the flags `serve` and `dev` share. */
export function addServeFlags(cmd: Command): Command {
  cmd = cmd
    .argument("[dir]", "functions directory", "functions")
    .addOption(new Option("-p, --port <port>", "port to listen on").env("PORT").argParser((v) => parsePort(v, "--port (or $PORT)")))
    .addOption(new Option("--host <host>", "address to listen on").env("HOST"))
    .addOption(new Option("--token <token>", "require this bearer token (one token with every role)").env("STREAMFN_TOKEN"))
    .addOption(new Option("--auth <file>", "tokens with roles (produce, read, admin): an auth file, or its JSON").env("STREAMFN_AUTH"))
    .option("--insecure", "listen on a non-loopback --host without any token")
    .option("-c, --config <file>", "JSON config file (port, host, token, auth, insecure, limits, defaults, functions, mqtt, nats, sources)")
    .option("--set <option=value>", "set a function option for all (idleTimeoutMs=5000) or one function (echo.concurrency=4); repeatable", collect, [])
    .option("--no-inline", "refuse functions that ask for the inline tier (sandbox \"inline\": no isolation from the server)")
    .option("--no-build-cache", "bundle and check every function at start, not reusing what an earlier run made of unchanged files")
    .option("--spare-threads <n>", "worker threads kept booted for cold starts (0 turns it off)", (v) => parseCount(v, "--spare-threads"), 1)
    .option(
      "--grace-ms <ms>",
      `on SIGINT/SIGTERM, how long running streams get to finish after their input ends with reason shutdown (default ${kDefaultGraceMs})`,
      (v) => parseMs(v, "--grace-ms"),
    )
    .addOption(new Option("--mqtt <url>", "MQTT broker for functions' sources and outputs (mqtt://[user:pass@]host:1883)").env("STREAMFN_MQTT"))
    .addOption(new Option("--mqtt-username <user>", "MQTT user name (over the URL's)").env("STREAMFN_MQTT_USERNAME"))
    .addOption(new Option("--mqtt-password <password>", "MQTT password (over the URL's)").env("STREAMFN_MQTT_PASSWORD"))
    .addOption(new Option("--nats <url>", "NATS server for functions' sources and outputs (nats://[user:pass@|token@]host:4222)").env("STREAMFN_SOURCES_NATS"));
  return addLimitFlags(cmd);
}

/** The rate limits per client address (serve, dev and gateway); 0 turns one off. */
export function addLimitFlags(cmd: Command): Command {
  return cmd
    .option("--limit-streams-per-s <n>", "new streams per second per client address", (v) => parseLimit(v, "--limit-streams-per-s"))
    .option("--limit-events-per-s <n>", "events per second per client address", (v) => parseLimit(v, "--limit-events-per-s"))
    .option("--limit-bytes-per-s <n>", "event bytes per second per client address", (v) => parseLimit(v, "--limit-bytes-per-s"))
    .option("--limit-concurrent-streams <n>", "open streams per client address", (v) => parseLimit(v, "--limit-concurrent-streams"));
}

export interface LimitFlags {
  limitStreamsPerS?: number;
  limitEventsPerS?: number;
  limitBytesPerS?: number;
  limitConcurrentStreams?: number;
}

/** The --limit-* flags given, as limits. */
export function limitsFromFlags(opts: LimitFlags): RateLimits {
  const out: RateLimits = {};
  if (opts.limitStreamsPerS !== undefined) out.streamsPerS = opts.limitStreamsPerS;
  if (opts.limitEventsPerS !== undefined) out.eventsPerS = opts.limitEventsPerS;
  if (opts.limitBytesPerS !== undefined) out.bytesPerS = opts.limitBytesPerS;
  if (opts.limitConcurrentStreams !== undefined) out.concurrentStreams = opts.limitConcurrentStreams;
  return out;
}

export interface ServeFlags extends LimitFlags {
  port?: number;
  host?: string;
  token?: string;
  auth?: string;
  insecure?: boolean;
  config?: string;
  set: string[];
  watch: boolean;
  spareThreads: number;
  buildCache: boolean;
  inline: boolean;
  graceMs?: number;
  mqtt?: string;
  mqttUsername?: string;
  mqttPassword?: string;
  nats?: string;
}

/**
 * Starts a server from `serve`-style flags (shared by `serve` and `dev`). Settings that name no
 * served function go to `warn` (stderr by default): they are the command line's, not the server's.
 */
export async function startFromFlags(
  dir: string,
  opts: ServeFlags,
  extra: Partial<ServerOptions> = {},
  warn: (line: string) => void = (line) => console.error(line),
): Promise<StreamfnServer> {
  const cfg = opts.config ? readConfigFile(opts.config) : {};
  const defaults: Record<string, unknown> = { ...cfg.defaults };
  const overrides: Record<string, Record<string, unknown>> = {};
  const named: FunctionSetting[] = [];
  for (const [k, v] of Object.entries(cfg.functions ?? {})) {
    overrides[k] = { ...v };
    named.push({ name: k, where: `config ${opts.config}: functions.${k}` });
  }
  for (const k of Object.keys(cfg.sources ?? {})) named.push({ name: k, where: `config ${opts.config}: sources.${k}` });
  for (const s of opts.set) {
    const fn = applySetting(s, defaults, overrides);
    if (fn) named.push({ name: fn, where: `--set ${s}` });
  }
  // The spare threads boot (on another core) while this thread loads the server.
  const { SpareThreads } = await import("../../instances/spare-threads.js");
  const memoryMb = typeof defaults.memoryMb === "number" ? defaults.memoryMb : kDefaultOptions.memoryMb;
  const spares = new SpareThreads(opts.spareThreads, memoryMb);
  let server: StreamfnServer;
  try {
    server = await startServer(dir, opts, cfg, defaults, overrides, spares, extra);
  } catch (err) {
    await spares.close();
    throw err;
  }
  const served = server.registry.functions().filter((f) => f.current).map((f) => f.name);
  for (const w of unknownFunctionWarnings(named, served)) warn(w);
  return server;
}

async function startServer(
  dir: string,
  opts: ServeFlags,
  cfg: ReturnType<typeof readConfigFile>,
  defaults: Record<string, unknown>,
  overrides: Record<string, Record<string, unknown>>,
  spares: SpareThreads,
  extra: Partial<ServerOptions>,
): Promise<StreamfnServer> {
  const { StreamfnServer } = await import("../../server/server.js");
  const { loadAuth } = await import("../../auth/auth-config.js");
  const { mergeLimits } = await import("../../auth/rate-limits.js");
  return StreamfnServer.start({
    functionsDir: dir,
    port: opts.port ?? cfg.port ?? 8080,
    host: opts.host ?? cfg.host ?? "127.0.0.1",
    token: opts.token ?? cfg.token,
    auth: opts.auth !== undefined ? loadAuth(opts.auth, "--auth (or STREAMFN_AUTH)") : cfg.auth,
    insecure: opts.insecure ?? cfg.insecure,
    limits: mergeLimits(cfg.limits, limitsFromFlags(opts)),
    defaults: defaults as StreamFunctionOptions,
    overrides: overrides as Record<string, StreamFunctionOptions>,
    watch: opts.watch,
    spares,
    buildCache: opts.buildCache,
    allowInline: opts.inline,
    graceMs: opts.graceMs ?? cfg.graceMs ?? kDefaultGraceMs,
    connectors: {
      mqtt: opts.mqtt ?? cfg.mqtt,
      mqttUsername: opts.mqttUsername,
      mqttPassword: opts.mqttPassword,
      nats: opts.nats ?? cfg.nats,
      sources: cfg.sources,
    },
    ...extra,
  });
}

/**
 * The server log on stdout for a console: JSON lines, or readable coloured lines on a TTY,
 * held back until `release()` so the start-up line comes first.
 */
export async function consoleLogger(): Promise<{ logger: ServerLogger; release(): void }> {
  const { HeldDestination, createServerLogger } = await import("../../server/logger.js");
  const held = new HeldDestination(process.stdout);
  const tty = process.stdout.isTTY === true;
  const logger = createServerLogger({ destination: held, pretty: tty, color: tty && !process.env.NO_COLOR });
  return { logger, release: () => held.release() };
}

/** The one start-up line: where the server listens and how to send a first stream. */
export function announce(server: StreamfnServer, readyMs: number): void {
  const names = server.registry.functions().filter((f) => f.current).map((f) => f.name);
  const first = names.includes("echo") ? "echo" : (names[0] ?? "<function>");
  const ws = server.url.replace(/^http/, "ws");
  console.log(
    `streamfn listening on ${server.url} (${names.length} function${names.length === 1 ? "" : "s"}: ${names.join(", ") || "none"}; ready in ${readyMs} ms). ` +
      `First stream: printf '{"hello":1}\\n{"hello":2}\\n' | ${selfCommand()} send ${first} --url ${server.url} — or connect a WebSocket to ${ws}/v1/functions/${first}/streams`,
  );
}

/**
 * SIGINT/SIGTERM end every stream's input (reason shutdown) and give handlers `graceMs` to
 * finish; a second signal forces the exit.
 */
export function stopOnSignals(server: StreamfnServer, graceMs: number): void {
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) process.exit(130);
    stopping = true;
    console.log(`streamfn: ${signal}: ending every stream's input; handlers have up to ${graceMs} ms to finish (again to force)`);
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error(`streamfn: shutting down failed: ${err instanceof Error ? err.message : String(err)}`);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
}
