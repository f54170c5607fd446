import type { AddressInfo } from "node:net";
import { hostname } from "node:os";
import { ControlAccess, isLoopbackHost } from "../control/access.js";
import { cancelStream } from "../control/streams.js";
import { Gateway } from "../gateway/gateway.js";
import { sendJson } from "../gateway/http-util.js";
import { createHttpStreams } from "../gateway/http-streams.js";
import type { ClusterLogger } from "./connect.js";
import { ClusterStreamTable } from "./gateway-table.js";
import { openCluster } from "./open-cluster.js";
import type { ClusterHandle } from "./open-cluster.js";

export interface ClusterGatewayOptions {
  nats: string;
  port?: number;
  host?: string;
  token?: string;
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
  readonly #cluster: ClusterHandle;
  readonly #host: string;
  readonly startedAt = Date.now();
  #closing: Promise<void> | undefined;

  private constructor(cluster: ClusterHandle, table: ClusterStreamTable, options: ClusterGatewayOptions) {
    this.#cluster = cluster;
    this.table = table;
    this.#host = options.host ?? "127.0.0.1";
    this.gateway = new Gateway(table, { token: options.token, pingIntervalMs: options.pingIntervalMs });
    this.gateway.streamHttp(createHttpStreams(table));
    this.gateway.route("GET", "/healthz", (_req, res) => sendJson(res, 200, { ok: true }));
    this.gateway.route("GET", "/v1/status", async (_req, res) => sendJson(res, 200, await this.status()));
    const access = new ControlAccess({ token: options.token, exposed: !isLoopbackHost(this.#host) });
    const logger = options.logger ?? { info() {}, warn() {} };
    this.gateway.route("DELETE", "/v1/functions/:fn/streams/:id", (_req, res, url, p) => cancelStream({ table, access, logger }, res, url, p.fn!, p.id!));
  }

  static async start(options: ClusterGatewayOptions): Promise<ClusterGatewayServer> {
    const name = options.name ?? `${hostname()}-${process.pid}`;
    const cluster = await openCluster({ servers: options.nats, name: `streamfn-gateway-${name}`, prefix: options.prefix, storage: options.storage, logger: options.logger });
    let table: ClusterStreamTable | undefined;
    try {
      table = await ClusterStreamTable.create(cluster, { name, outputRetention: options.outputRetention, endedRetentionMs: options.endedRetentionMs });
      const server = new ClusterGatewayServer(cluster, table, options);
      await new Promise<void>((resolve, reject) => {
        server.gateway.server.once("error", reject);
        server.gateway.server.listen(options.port ?? 8080, server.#host, () => {
          server.gateway.server.off("error", reject);
          resolve();
        });
      });
      return server;
    } catch (err) {
      await table?.close();
      await cluster.close().catch(() => {});
      throw err;
    }
  }

  async status(): Promise<Record<string, unknown>> {
    const workers = await this.table.workers().catch(() => []);
    return {
      workers: workers.map((w) => ({ ...w, ageMs: Date.now() - w.updatedAt })),
      takeovers: workers.reduce((n, w) => n + w.takeovers, 0),
      mode: "cluster",
      gateway: this.table.name,
      uptimeMs: Date.now() - this.startedAt,
      liveStreams: this.table.liveCount,
      functions: [...this.table.catalog()].map(([name, e]) => ({
        name,
        versions: [{ version: e.version, role: "current", coldStarts: 0, instances: [] }],
        worker: e.worker,
      })),
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
