import type { AddressInfo } from "node:net";
import { hostname } from "node:os";
import { combineAuth } from "../auth/auth-config.js";
import type { AuthConfig } from "../auth/auth-config.js";
import type { RateLimits } from "../auth/rate-limits.js";
import { ControlAccess, isLoopbackHost } from "../control/access.js";
import { addressLimits, assertSafeHost, logInsecure } from "../auth/safe-defaults.js";
import { cancelStream } from "../control/streams.js";
import { serveClusterDashboard } from "../dashboard/cluster-page.js";
import { Gateway } from "../gateway/gateway.js";
import { sendJson } from "../gateway/http-util.js";
import { createHttpStreams } from "../gateway/http-streams.js";
import type { ClusterLogger } from "./connect.js";
import { workPending } from "./cluster-metrics.js";
import { GatewayMetrics } from "./gateway-metrics.js";
import { registerRateLimitMetric } from "../metrics/read-metrics.js";
import { ClusterStreamTable } from "./gateway-table.js";
import { openCluster } from "./open-cluster.js";
import type { ClusterHandle } from "./open-cluster.js";
import { ensureBuckets, kWorkerStatusEveryMs } from "./wire.js";
import type { ClusterBuckets, WorkerStatus } from "./wire.js";
import { bucketKeys } from "./kv-keys.js";

export interface ClusterGatewayOptions {
  nats: string;
  port?: number;
  host?: string;
  token?: string;
  /** Tokens with roles (see ServerOptions.auth). */
  auth?: AuthConfig;
  /** Listen on a non-loopback host without tokens (see ServerOptions.insecure). */
  insecure?: boolean;
  /** Rate limits per client address (see ServerOptions.limits). */
  limits?: RateLimits;
  name?: string;
  prefix?: string;
  storage?: "file" | "memory";
  pingIntervalMs?: number;
  outputRetention?: number;
  endedRetentionMs?: number;
  logger?: ClusterLogger;
}

/**
 * `streamfn gateway`: the stream protocols (WebSocket, HTTP NDJSON, per-event POST, SSE,
 * stream status) on one port over the cluster's stream table; runs no function itself.
 */
export class ClusterGatewayServer {
  readonly gateway: Gateway;
  readonly table: ClusterStreamTable;
  readonly metrics: GatewayMetrics;
  readonly #cluster: ClusterHandle;
  readonly #buckets: ClusterBuckets;
  readonly #host: string;
  readonly startedAt = Date.now();
  #closing: Promise<void> | undefined;

  private constructor(cluster: ClusterHandle, table: ClusterStreamTable, buckets: ClusterBuckets, options: ClusterGatewayOptions) {
    this.#cluster = cluster;
    this.#buckets = buckets;
    this.table = table;
    this.metrics = new GatewayMetrics(cluster, table);
    const counted = this.metrics.counted();
    this.#host = options.host ?? "127.0.0.1";
    const auth = combineAuth(options.token, options.auth);
    const exposed = !isLoopbackHost(this.#host);
    this.gateway = new Gateway(counted, { auth, exposed, addressLimits: addressLimits(this.#host, auth, options.limits), pingIntervalMs: options.pingIntervalMs });
    this.gateway.streamHttp(createHttpStreams(counted));
    registerRateLimitMetric(this.metrics.registry, this.gateway.authorizer.limiter);
    this.gateway.route("GET", "/", (_req, res) => serveClusterDashboard(res));
    this.gateway.route("GET", "/healthz", (_req, res) => sendJson(res, 200, { ok: true }));
    this.gateway.route("GET", "/metrics", async (_req, res) => {
      const text = await this.metrics.render();
      res.writeHead(200, { "content-type": this.metrics.contentType, "content-length": Buffer.byteLength(text) });
      res.end(text);
    });
    this.gateway.route("GET", "/v1/status", async (_req, res) => sendJson(res, 200, await this.status()));
    const access = new ControlAccess({ hasTokens: this.gateway.authorizer.hasTokens, exposed });
    const logger = options.logger ?? { info() {}, warn() {} };
    this.gateway.route("DELETE", "/v1/functions/:fn/streams/:id", (req, res, url, p) => cancelStream({ table, access, logger }, req, res, url, p.fn!, p.id!));
  }

  static async start(options: ClusterGatewayOptions): Promise<ClusterGatewayServer> {
    assertSafeHost(options.host ?? "127.0.0.1", combineAuth(options.token, options.auth), options.insecure);
    const name = options.name ?? `${hostname()}-${process.pid}`;
    const cluster = await openCluster({ servers: options.nats, name: `streamfn-gateway-${name}`, prefix: options.prefix, storage: options.storage, logger: options.logger });
    let table: ClusterStreamTable | undefined;
    try {
      table = await ClusterStreamTable.create(cluster, { name, outputRetention: options.outputRetention, endedRetentionMs: options.endedRetentionMs });
      const buckets = await ensureBuckets(cluster.cluster);
      const server = new ClusterGatewayServer(cluster, table, buckets, options);
      await new Promise<void>((resolve, reject) => {
        server.gateway.server.once("error", reject);
        server.gateway.server.listen(options.port ?? 8080, server.#host, () => {
          server.gateway.server.off("error", reject);
          resolve();
        });
      });
      if (!server.gateway.authorizer.hasTokens && !isLoopbackHost(server.#host) && options.logger) logInsecure(options.logger, server.#host);
      return server;
    } catch (err) {
      await table?.close();
      await cluster.close().catch(() => {});
      throw err;
    }
  }

  /**
   * Every worker's status record, fresh or not: a worker that stopped refreshing its record
   * (killed, partitioned) is shown as stale; one that shut down cleanly deleted its own.
   */
  async #allWorkers(): Promise<(WorkerStatus & { ageMs: number; stale: boolean })[]> {
    const out: (WorkerStatus & { ageMs: number; stale: boolean })[] = [];
    const kv = this.#buckets.workers;
    for (const key of await bucketKeys(kv)) {
      const e = await kv.get(key).catch(() => null);
      if (!e || e.operation !== "PUT") continue;
      const w = e.json<WorkerStatus>();
      const ageMs = Date.now() - w.updatedAt;
      out.push({ ...w, ageMs, stale: ageMs > 3 * kWorkerStatusEveryMs });
    }
    return out.sort((a, b) => (a.worker < b.worker ? -1 : 1));
  }

  async status(): Promise<Record<string, unknown>> {
    const workers = await this.#allWorkers().catch(() => []);
    const memory = process.memoryUsage();
    const functions = await Promise.all(
      [...this.table.catalog()].map(async ([name, e]) => ({
        name,
        versions: [{ version: e.version, role: "current", coldStarts: 0, instances: [] }],
        worker: e.worker,
        workPending: (await workPending(this.#cluster.cluster, name)) ?? 0,
      })),
    );
    return {
      workers,
      takeovers: workers.reduce((n, w) => n + w.takeovers, 0),
      process: { pid: process.pid, uptimeSeconds: Math.round(process.uptime() * 10) / 10, rssBytes: memory.rss, heapUsedBytes: memory.heapUsed, node: process.version },
      queuedStreams: functions.reduce((n, f) => n + f.workPending, 0),
      watching: false,
      mode: "cluster",
      gateway: this.table.name,
      uptimeMs: Date.now() - this.startedAt,
      liveStreams: this.table.liveCount,
      functions,
    };
  }

  get port(): number {
    return (this.gateway.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `http://${this.#host.includes(":") ? `[${this.#host}]` : this.#host}:${this.port}`;
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.table.close();
      await this.gateway.close();
      await this.#cluster.close().catch(() => {});
    })();
    return this.#closing;
  }
}
