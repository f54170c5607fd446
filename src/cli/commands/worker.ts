import type { Command } from "commander";
import { Option } from "commander";
import { StreamfnError } from "../../api/errors.js";
import type { StreamFunctionOptions } from "../../api/types.js";
import { applySetting, readConfigFile } from "../config.js";
import { collect, withExample } from "../util.js";
import type { ServerLogger } from "../../server/logger.js";

interface WorkerFlags {
  nats: string;
  leaseMs?: number;
  name?: string;
  prefix?: string;
  memory?: boolean;
  config?: string;
  set: string[];
  port?: number;
  host?: string;
  inline: boolean;
}

function parsePort(value: string): number {
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535) throw new StreamfnError("INVALID_OPTIONS", `--port takes a port number (0-65535), got "${value}"`);
  return Number(value);
}

function parseMs(value: string): number {
  if (!/^\d{1,9}$/.test(value) || Number(value) < 100) throw new StreamfnError("INVALID_OPTIONS", `--lease-ms takes milliseconds (>= 100), got "${value}"`);
  return Number(value);
}

/** JSON lines on stdout: what a process supervisor collects. */
/**
 * The process's log: the server log `streamfn serve` writes (pino; JSON lines, readable lines
 * on a terminal), loaded when the command runs.
 */
export async function processLogger(): Promise<ServerLogger> {
  const { createServerLogger } = await import("../../server/logger.js");
  return createServerLogger();
}

export function registerWorker(program: Command): void {
  const cmd = program
    .command("worker")
    .description("cluster mode: run a directory's functions for the streams a NATS JetStream cluster queues (gateways take the connections)")
    .argument("[dir]", "functions directory", "functions")
    .addOption(new Option("--nats <url>", "NATS server URL(s), comma-separated").env("STREAMFN_NATS").makeOptionMandatory())
    .option("--lease-ms <ms>", "work lease: a worker silent this long loses its streams to another (default 15000)", parseMs)
    .option("--name <id>", "this worker's name in owner records and logs (default <host>-<pid>)")
    .option("--prefix <prefix>", "keeps this deployment's streams and buckets apart from others on the same NATS account")
    .option("--port <port>", "serve GET /metrics, /v1/status and /healthz on this port (0 = any free port; default none)", parsePort)
    .option("--host <host>", "address of that endpoint (default 127.0.0.1)")
    .option("--memory", "keep the cluster's streams in memory (throwaway clusters, tests)")
    .option("-c, --config <file>", "JSON config file (its defaults and functions options apply)")
    .option("--set <option=value>", "set a function option for all (idleTimeoutMs=5000) or one function (echo.concurrency=4); repeatable", collect, [])
    .option("--no-inline", "refuse functions that ask for the inline tier (sandbox \"inline\": no isolation from the worker)")
    .action(async (dir: string, opts: WorkerFlags) => {
      const cfg = opts.config ? readConfigFile(opts.config) : {};
      const defaults: Record<string, unknown> = { ...cfg.defaults };
      const overrides: Record<string, Record<string, unknown>> = {};
      for (const [k, v] of Object.entries(cfg.functions ?? {})) overrides[k] = { ...v };
      for (const s of opts.set) applySetting(s, defaults, overrides);
      const { ClusterWorker } = await import("../../cluster/worker.js");
      const logger = await processLogger();
      const worker = await ClusterWorker.start({
        nats: opts.nats,
        functionsDir: dir,
        leaseMs: opts.leaseMs,
        name: opts.name,
        prefix: opts.prefix,
        storage: opts.memory ? "memory" : "file",
        defaults: defaults as StreamFunctionOptions,
        overrides: overrides as Record<string, StreamFunctionOptions>,
        logger,
        port: opts.port,
        host: opts.host,
        allowInline: opts.inline,
      });
      let stopping = false;
      const stop = (): void => {
        if (stopping) process.exit(130);
        stopping = true;
        void worker.close().then(() => process.exit(0));
      };
      process.on("SIGINT", stop);
      process.on("SIGTERM", stop);
      // After the handlers: whoever waits for this line may signal at once.
      logger.info({ worker: worker.name, functions: worker.status().functions, ...(worker.url ? { url: worker.url } : {}) }, "worker ready");
    });
  withExample(cmd, "streamfn worker --nats nats://127.0.0.1:4222 ./functions");
}
