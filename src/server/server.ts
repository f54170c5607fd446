import type { AddressInfo } from "node:net";
import type { StreamFunctionOptions } from "../api/types.js";
import { serveDashboard } from "../dashboard/dashboard.js";
import { Gateway } from "../gateway/gateway.js";
import { sendJson } from "../gateway/http-util.js";
import { createHttpStreams } from "../gateway/http-streams.js";
import type { FunctionPool, PoolObserver } from "../instances/pool.js";
import { StreamfnMetrics } from "../metrics/metrics.js";
import { Registry } from "../registry/registry.js";
import { SpareThreads } from "../instances/spare-threads.js";
import { kDefaultOptions } from "../api/options.js";
import type { RegistryChange } from "../registry/registry.js";
import { Router } from "../router/router.js";
import type { RouterObserver } from "../router/router.js";
import { composePoolObservers, composeRouterObservers } from "./observers.js";
import { buildStatus } from "./status.js";

export interface ServerOptions {
  /** Directory with one function per file. */
  functionsDir: string;
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  token?: string;
  /**
   * Worker threads kept booted for the next cold starts (default 1; 0: none). Each holds a few
   * MiB and no CPU; a cold start on one skips booting Node in a thread.
   */
  spareThreads?: number;
  /** WebSocket keep-alive ping interval; a peer that misses a ping is disconnected. Default 30 000; 0 disables. */
  pingIntervalMs?: number;
  /** Options under every function's own. */
  defaults?: StreamFunctionOptions;
  /** Per function, over its own options. */
  overrides?: Record<string, StreamFunctionOptions>;
  cacheDir?: string;
  /** How long ended stream ids are remembered for late-event rejection. */
  endedRetentionMs?: number;
  /** Outputs kept per stream for subscribers that resume (router option outputRetention). Default 128. */
  outputRetention?: number;
  /** On close, how long running streams get to finish. Default 5 000. */
  graceMs?: number;
  /** Gets the server's log lines; default stdout. */
  log?: (line: string) => void;
  /** Called with the router's stream events, next to the server's own metrics. */
  observer?: RouterObserver;
  /** Called with the pools' instance events, next to the server's own metrics. */
  poolObserver?: PoolObserver;
  /** Redeploy a function when its file changes, add new files, remove deleted ones. Default false (`streamfn serve` turns it on). */
  watch?: boolean;
  /** With `watch`: called with each watched file whose changes settled, before its functions are rebuilt (even when no bundle changes). */
  onWatchedChange?: (path: string) => void;
}

/** One process serving a directory of functions: registry, pools, router and gateway wired together. */
export class StreamfnServer {
  readonly registry: Registry;
  /** Booted worker threads that new instances start on (see SpareThreads). */
  readonly spares: SpareThreads;
  readonly router: Router;
  readonly gateway: Gateway;
  readonly metrics: StreamfnMetrics;
  readonly startedAt = Date.now();
  readonly #options: ServerOptions;
  readonly #log: (line: string) => void;
  #closing: Promise<void> | undefined;

  private constructor(options: ServerOptions) {
    this.#options = options;
    this.#log = options.log ?? ((line) => console.log(line));
    // The metrics read router and registry state at scrape time, after both exist.
    this.metrics = new StreamfnMetrics({
      liveStreams: () => this.router.live(),
      functions: () => this.registry.functions(),
    });
    const logExits: PoolObserver = {
      instanceGone: (pool: FunctionPool, _instance, exit) => {
        if (exit) this.#log(`streamfn: an instance of ${pool.functionName}@${pool.version} went away: ${exit.message}`);
      },
    };
    this.spares = new SpareThreads(options.spareThreads ?? 1, options.defaults?.memoryMb ?? kDefaultOptions.memoryMb);
    this.registry = new Registry({
      spares: this.spares,
      dir: options.functionsDir,
      cacheDir: options.cacheDir,
      defaults: options.defaults,
      overrides: options.overrides,
      observer: composePoolObservers(this.metrics.poolObserver, logExits, options.poolObserver),
    });
    this.router = new Router(this.registry, composeRouterObservers(this.metrics.routerObserver, options.observer), {
      endedRetentionMs: options.endedRetentionMs,
      outputRetention: options.outputRetention,
    });
    this.gateway = new Gateway(this.router, { token: options.token, pingIntervalMs: options.pingIntervalMs });
    this.gateway.streamHttp(createHttpStreams(this.router, this.registry));
    this.gateway.route("GET", "/", (_req, res) => serveDashboard(res));
    this.gateway.route("GET", "/healthz", (_req, res) => sendJson(res, 200, { ok: true }));
    this.gateway.route("GET", "/v1/status", (_req, res) => sendJson(res, 200, buildStatus(this)));
    this.gateway.route("GET", "/metrics", async (_req, res) => {
      const text = await this.metrics.render();
      res.writeHead(200, { "content-type": this.metrics.contentType, "content-length": Buffer.byteLength(text) });
      res.end(text);
    });
  }

  /** Loads the functions, then listens. Functions that fail to load are logged; the rest serve. */
  static async start(options: ServerOptions): Promise<StreamfnServer> {
    const server = new StreamfnServer(options);
    try {
      // Watching starts before the first load so no edit falls in between; deploys are
      // serialized per function and a content hash already served is not deployed twice.
      if (options.watch) server.registry.watch((change) => server.#log(describeChange(change)), options.onWatchedChange);
      const { failed, skipped } = await server.registry.loadAll();
      for (const f of skipped) server.#log(`streamfn: ${f.message}`);
      for (const f of failed) server.#log(`streamfn: ${f.error.code}: ${f.error.message}`);
      await new Promise<void>((resolve, reject) => {
        server.gateway.server.once("error", reject);
        server.gateway.server.listen(options.port ?? 8080, options.host ?? "127.0.0.1", () => {
          server.gateway.server.off("error", reject);
          resolve();
        });
      });
    } catch (err) {
      // Instances and the watcher started so far must not outlive a server that never listened.
      await server.registry.close();
      await server.spares.close();
      throw err;
    }
    return server;
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
      await this.router.close(this.#options.graceMs ?? 5_000);
      await this.gateway.close();
      await this.registry.close();
      await this.spares.close();
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function describeChange(change: RegistryChange): string {
  switch (change.kind) {
    case "deployed":
      return `streamfn: deployed ${change.name}@${change.version} (${change.previous ? `replaces ${change.previous}` : "new function"})`;
    case "removed":
      return `streamfn: removed ${change.name}@${change.version} (its file is gone; running streams finish on it)`;
    case "failed":
      return (
        `streamfn: ${change.error.code}: ${change.error.message}; ` +
        (change.serving ? `still serving ${change.name}@${change.serving}` : "not serving it")
      );
    case "skipped":
      return `streamfn: ${change.message}`;
    case "watch-stopped":
      return `streamfn: ${change.error.code}: ${change.error.message}; functions keep serving, changes are no longer picked up`;
  }
}
