import type { AddressInfo } from "node:net";
import type { StreamFunctionOptions } from "../api/types.js";
import { combineAuth } from "../auth/auth-config.js";
import type { AuthConfig } from "../auth/auth-config.js";
import type { RateLimits } from "../auth/rate-limits.js";
import { addressLimits, assertSafeHost, logInsecure } from "../auth/safe-defaults.js";
import { isLoopbackHost } from "../control/access.js";
import { registerControl } from "../control/control.js";
import { registerDashboard } from "../dashboard/dashboard.js";
import type { Dashboard } from "../dashboard/dashboard.js";
import { RecentStreams } from "../dashboard/recent-streams.js";
import { Gateway } from "../gateway/gateway.js";
import { sendJson } from "../gateway/http-util.js";
import { createHttpStreams } from "../gateway/http-streams.js";
import { StreamfnMetrics } from "../metrics/metrics.js";
import { Registry, functionNameOf } from "../registry/registry.js";
import { SpareThreads } from "../instances/spare-threads.js";
import { kDefaultOptions } from "../api/options.js";
import { Router } from "../router/router.js";
import type { RouterObserver } from "../router/router.js";
import type { StreamTable } from "../router/stream-table.js";
import type { PoolObserver } from "../instances/pool.js";
import { Connectors, normalizeConnectorOptions } from "../connectors/connectors.js";
import type { ConnectorOptions } from "../connectors/connectors.js";
import { composePoolObservers, composeRouterObservers } from "./observers.js";
import { buildStatus } from "./status.js";
import { LogFollowers } from "../logs/log-followers.js";
import { registerLogRoutes } from "../logs/log-routes.js";
import { createServerLogger } from "./logger.js";
import type { ServerLogger } from "./logger.js";
import { instanceLogObserver, logRegistryChange, streamLogObserver } from "./server-log.js";

export interface ServerOptions {
  /** Directory with one function per file. */
  functionsDir: string;
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** The single legacy token: a token with every role (as `--token`). */
  token?: string;
  /** Tokens with roles, checked (see loadAuth / parseAuth and SECURITY.md). */
  auth?: AuthConfig;
  /**
   * Listen on a non-loopback `host` without any token. Refused otherwise: such a server would
   * let anyone who reaches it stream to every function and read every output.
   */
  insecure?: boolean;
  /**
   * Rate limits per client address, over the auth file's `limits.address` and the defaults
   * (none on a loopback host; kExposedAddressLimits otherwise). 0 turns one off.
   */
  limits?: RateLimits;
  /**
   * Whether other machines can reach the server. If so and there is no token, the control
   * API refuses changes (uploading a function runs its code here). Default: unless `host` is a
   * loopback address; set it for a loopback server that a proxy makes reachable.
   */
  exposed?: boolean;
  /**
   * Worker threads kept booted for the next cold starts (default 1; 0: none). Each holds a few
   * MiB and no CPU; a cold start on one skips booting Node in a thread.
   */
  spareThreads?: number;
  /**
   * Spare threads already booting, handed over (the server closes them): a command line starts
   * them before it loads the server, so their boot overlaps the loading. Takes the place of
   * `spareThreads`.
   */
  spares?: SpareThreads;
  /** WebSocket keep-alive ping interval; a peer that misses a ping is disconnected. Default 30 000; 0 disables. */
  pingIntervalMs?: number;
  /** Options under every function's own. */
  defaults?: StreamFunctionOptions;
  /** Per function, over its own options. */
  overrides?: Record<string, StreamFunctionOptions>;
  /** Whether functions may run on the inline tier, unisolated on the server's thread (SandboxKind). Default true. */
  allowInline?: boolean;
  cacheDir?: string;
  /**
   * Reuse the bundles and load checks of function files unchanged since an earlier run
   * (kept in `<cacheDir>/build-cache`). Default true.
   */
  buildCache?: boolean;
  /** How long ended stream ids are remembered for late-event rejection. */
  endedRetentionMs?: number;
  /** Outputs kept per stream for subscribers that resume (router option outputRetention). Default 128. */
  outputRetention?: number;
  /**
   * On close, how long running streams get to finish once their input ended with reason
   * `shutdown`; the rest fail with SHUTDOWN_TIMEOUT. Default 10 000.
   */
  graceMs?: number;
  /**
   * The server's structured log (see createServerLogger): JSON lines on stdout by default,
   * readable lines when stdout is a TTY.
   */
  logger?: ServerLogger;
  /** Called with the router's stream events, next to the server's own metrics. */
  observer?: RouterObserver;
  /** Called with the pools' instance events, next to the server's own metrics. */
  poolObserver?: PoolObserver;
  /** Redeploy a function when its file changes, add new files, remove deleted ones. Default false (`streamfn serve` turns it on). */
  watch?: boolean;
  /**
   * Broker connections and the sources bound over them (see docs/connectors.md): `mqtt` and
   * `nats` URLs, and per function the `sources` that replace the function's own.
   */
  connectors?: ConnectorOptions;
  /** With `watch`: called with each watched file whose changes settled, before its functions are rebuilt (even when no bundle changes). */
  onWatchedChange?: (path: string) => void;
}

/** How long after listening the metrics registry loads, unless a scrape asks for it first. */
const kMetricsLoadDelayMs = 1_000;

/** One process serving a directory of functions: registry, pools, router and gateway wired together. */
export class StreamfnServer {
  readonly registry: Registry;
  /** Booted worker threads that new instances start on (see SpareThreads). */
  readonly spares: SpareThreads;
  /** The stream table, as the gateway, control, logs and status routes see it (embedded: the router). */
  readonly table: StreamTable;
  /** The embedded table itself, for what only this process can see (metrics, observers, tests). */
  readonly router: Router;
  readonly gateway: Gateway;
  readonly metrics: StreamfnMetrics;
  readonly startedAt = Date.now();
  readonly logger: ServerLogger;
  /** Readers following `ctx.log` lines (the logs routes with ?follow=1). */
  readonly logFollowers = new LogFollowers();
  /** The page at `/` and its live feed (one sampler, running while someone watches). */
  readonly dashboard: Dashboard;
  /** MQTT topics and NATS subjects bound to functions: producers on the table, as WebSocket connections are. */
  readonly connectors: Connectors;
  readonly #recent = new RecentStreams();
  readonly #options: ServerOptions;
  readonly #streamLog: ReturnType<typeof streamLogObserver>;
  #closing: Promise<void> | undefined;

  private constructor(options: ServerOptions) {
    this.#options = options;
    this.logger = options.logger ?? createServerLogger();
    this.#streamLog = streamLogObserver(this.logger);
    // The metrics read router and registry state at scrape time, after both exist.
    this.metrics = new StreamfnMetrics({
      liveStreams: () => this.table.live(),
      functions: () => this.registry.functions(),
    });
    this.spares = options.spares ?? new SpareThreads(options.spareThreads ?? 1, options.defaults?.memoryMb ?? kDefaultOptions.memoryMb);
    this.registry = new Registry({
      spares: this.spares,
      dir: options.functionsDir,
      cacheDir: options.cacheDir,
      buildCache: options.buildCache,
      defaults: options.defaults,
      overrides: options.overrides,
      allowInline: options.allowInline,
      observer: composePoolObservers(this.metrics.poolObserver, instanceLogObserver(this.logger), options.poolObserver),
    });
    this.router = new Router(this.registry, composeRouterObservers(this.metrics.routerObserver, this.#streamLog, this.logFollowers, this.#recent, options.observer), {
      endedRetentionMs: options.endedRetentionMs,
      outputRetention: options.outputRetention,
    });
    this.table = this.router;
    this.connectors = new Connectors(this.table, this.registry, options.connectors ?? {}, this.logger);
    this.metrics.extend(async (registry) => {
      const { registerConnectorMetrics } = await import("../connectors/connector-metrics.js");
      registerConnectorMetrics(registry, () => this.connectors.status());
    });
    const host = options.host ?? "127.0.0.1";
    const exposed = options.exposed ?? !isLoopbackHost(host);
    const auth = combineAuth(options.token, options.auth);
    this.gateway = new Gateway(this.table, {
      auth,
      exposed,
      addressLimits: addressLimits(host, auth, options.limits),
      pingIntervalMs: options.pingIntervalMs,
    });
    this.gateway.streamHttp(createHttpStreams(this.table));
    const limiter = this.gateway.authorizer.limiter;
    this.metrics.extend(async (registry) => {
      const { registerRateLimitMetric } = await import("../metrics/read-metrics.js");
      registerRateLimitMetric(registry, limiter);
    });
    registerLogRoutes(this.gateway, this.table, this.registry, this.logFollowers);
    this.dashboard = registerDashboard(this.gateway, {
      functions: () => this.registry.functions(),
      liveStreams: () => this.table.live(),
      totals: () => this.metrics.totals(),
      recent: this.#recent,
      watching: () => this.registry.watching,
      sources: () => this.connectors.status().sources,
    });
    // While shutting down, a load balancer should send new streams elsewhere.
    this.gateway.route("GET", "/healthz", (_req, res) =>
      this.router.closing
        ? sendJson(res, 503, { ok: false, error: { code: "SHUTTING_DOWN", message: "the server is shutting down" } })
        : sendJson(res, 200, { ok: true }),
    );
    this.gateway.route("GET", "/v1/status", (_req, res) => sendJson(res, 200, buildStatus(this)));
    registerControl(this.gateway, {
      registry: this.registry,
      table: this.table,
      status: () => buildStatus(this),
      hasTokens: this.gateway.authorizer.hasTokens,
      exposed,
      logger: this.logger,
    });
    this.gateway.route("GET", "/metrics", async (_req, res) => {
      const text = await this.metrics.render();
      res.writeHead(200, { "content-type": this.metrics.contentType, "content-length": Buffer.byteLength(text) });
      res.end(text);
    });
  }

  /** Loads the functions, then listens. Functions that fail to load are logged; the rest serve. */
  static async start(options: ServerOptions): Promise<StreamfnServer> {
    assertSafeHost(options.host ?? "127.0.0.1", combineAuth(options.token, options.auth), options.insecure);
    // Before anything starts: a bad source fails here, leaving nothing running.
    if (options.connectors) options = { ...options, connectors: normalizeConnectorOptions(options.connectors) };
    const server = new StreamfnServer(options);
    try {
      // Watching starts before the first load so no edit falls in between; deploys are
      // serialized per function and a content hash already served is not deployed twice.
      const logger = server.logger;
      if (options.watch) server.registry.watch((change) => logRegistryChange(logger, change), options.onWatchedChange);
      const { deployed, failed, skipped, cached } = await server.registry.loadAll();
      const versions = new Map(server.registry.functions().map((f) => [f.name, f.current?.version]));
      for (const name of deployed) {
        logger.info({ fn: name, version: versions.get(name), ...(cached.includes(name) ? { cached: true } : {}) }, "deployed");
      }
      for (const f of skipped) logger.info({ fn: f.name, file: f.file }, f.message);
      for (const f of failed) {
        logger.error({ fn: functionNameOf(f.file), file: f.file, code: f.error.code, message: f.error.message }, "deploy failed");
      }
      // Brokers before the port: a wrong URL or refused credentials fail the start, naming the broker.
      await server.connectors.start();
      await new Promise<void>((resolve, reject) => {
        server.gateway.server.once("error", reject);
        server.gateway.server.listen(options.port ?? 8080, options.host ?? "127.0.0.1", () => {
          server.gateway.server.off("error", reject);
          resolve();
        });
      });
      const tokens = server.gateway.authorizer.hasTokens;
      logger.info(
        { url: server.url, functions: server.registry.functions().filter((f) => f.current).map((f) => f.name), auth: tokens ? "tokens" : "none" },
        "listening",
      );
      if (!tokens && !isLoopbackHost(options.host ?? "127.0.0.1")) logInsecure(logger, options.host!);
      // prom-client (and the process metrics it samples) is not needed to serve a first stream.
      server.metrics.loadSoon(kMetricsLoadDelayMs);
    } catch (err) {
      // Instances and the watcher started so far must not outlive a server that never listened.
      await server.connectors.close();
      await server.registry.close();
      await server.spares.close();
      throw err;
    }
    return server;
  }

  /** How long running streams get to finish on close. */
  get graceMs(): number {
    return this.#options.graceMs ?? 10_000;
  }

  get port(): number {
    return (this.gateway.server.address() as AddressInfo).port;
  }

  get url(): string {
    const host = this.#options.host ?? "127.0.0.1";
    return `http://${host.includes(":") ? `[${host}]` : host}:${this.port}`;
  }

  /** Stops accepting, lets running streams finish for `graceMs`, then stops every instance. Safe to call twice. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      // Sources first (no new messages), brokers last: outputs of streams finishing in the grace period still go out.
      await this.connectors.stopSources();
      await this.router.close(this.graceMs);
      await this.connectors.close();
      this.logFollowers.close();
      this.dashboard.close();
      await this.gateway.close();
      await this.registry.close();
      await this.spares.close();
      this.#streamLog.close();
      this.logger.info("stopped");
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
