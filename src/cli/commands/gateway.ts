import type { Command } from "commander";
import { Option } from "commander";
import { StreamfnError } from "../../api/errors.js";
import { parseCount, parsePort } from "../config.js";
import { withExample } from "../util.js";
import { processLogger } from "./worker.js";
import { addLimitFlags, limitsFromFlags } from "./serve.js";
import type { LimitFlags } from "./serve.js";

interface GatewayFlags extends LimitFlags {
  nats: string;
  port?: number;
  host?: string;
  token?: string;
  auth?: string;
  insecure?: boolean;
  name?: string;
  prefix?: string;
  memory?: boolean;
  outputRetention?: number;
  endedRetentionMs?: number;
  pingIntervalMs?: number;
}

function parseMs(value: string, flag: string): number {
  if (!/^\d{1,10}$/.test(value)) throw new StreamfnError("INVALID_OPTIONS", `${flag} takes milliseconds, got "${value}"`);
  return Number(value);
}

export function registerGateway(program: Command): void {
  const cmd = addLimitFlags(program
    .command("gateway")
    .description("cluster mode: take stream connections (WebSocket, HTTP, SSE) and relay them through NATS JetStream to workers")
    .addOption(new Option("--nats <url>", "NATS server URL(s), comma-separated").env("STREAMFN_NATS").makeOptionMandatory())
    .addOption(new Option("-p, --port <port>", "port to listen on").env("PORT").argParser((v) => parsePort(v, "--port (or $PORT)")))
    .addOption(new Option("--host <host>", "address to listen on").env("HOST"))
    .addOption(new Option("--token <token>", "require this bearer token (one token with every role)").env("STREAMFN_TOKEN"))
    .addOption(new Option("--auth <file>", "tokens with roles (produce, read, admin): an auth file, or its JSON").env("STREAMFN_AUTH"))
    .option("--insecure", "listen on a non-loopback --host without any token")
    .option("--name <id>", "this gateway's name in stream records (default <host>-<pid>)")
    .option("--prefix <prefix>", "the deployment prefix its workers use")
    .option("--memory", "keep the cluster's streams in memory (throwaway clusters, tests)")
    .option("--output-retention <n>", "outputs kept per stream for subscribers that resume (default 128)", (v) => parseCount(v, "--output-retention"))
    .option("--ended-retention-ms <ms>", "how long this gateway remembers ended streams' outputs and status (default 600000)", (v) => parseMs(v, "--ended-retention-ms"))
    .option("--ping-interval-ms <ms>", "WebSocket keep-alive ping interval; 0 turns it off (default 30000)", (v) => parseMs(v, "--ping-interval-ms")))
    .action(async (opts: GatewayFlags) => {
      const { ClusterGatewayServer } = await import("../../cluster/gateway-server.js");
      const { loadAuth } = await import("../../auth/auth-config.js");
      const logger = await processLogger();
      const server = await ClusterGatewayServer.start({
        nats: opts.nats,
        port: opts.port ?? 8080,
        host: opts.host ?? "127.0.0.1",
        token: opts.token,
        auth: opts.auth !== undefined ? loadAuth(opts.auth, "--auth (or STREAMFN_AUTH)") : undefined,
        insecure: opts.insecure,
        limits: limitsFromFlags(opts),
        name: opts.name,
        prefix: opts.prefix,
        storage: opts.memory ? "memory" : "file",
        outputRetention: opts.outputRetention,
        endedRetentionMs: opts.endedRetentionMs,
        pingIntervalMs: opts.pingIntervalMs,
        logger,
      });
      let stopping = false;
      const stop = (): void => {
        if (stopping) process.exit(130);
        stopping = true;
        void server.close().then(() => process.exit(0));
      };
      process.on("SIGINT", stop);
      process.on("SIGTERM", stop);
      // After the handlers: whoever waits for this line may signal at once.
      logger.info({ url: server.url, gateway: server.table.name }, "gateway listening");
    });
  withExample(cmd, "streamfn gateway --nats nats://127.0.0.1:4222 --port 8080");
}
