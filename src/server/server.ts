import type { AddressInfo } from "node:net";
import type { StreamFunctionOptions } from "../api/types.js";
import { Gateway, sendJson } from "../gateway/gateway.js";
import { createHttpStreams } from "../gateway/http-streams.js";
import type { FunctionPool } from "../instances/pool.js";
import { Registry } from "../registry/registry.js";
import { Router } from "../router/router.js";
import type { RouterObserver } from "../router/router.js";
import { buildStatus } from "./status.js";

export interface ServerOptions {
  /** Directory with one function per file. */
  functionsDir: string;
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  token?: string;
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
  observer?: RouterObserver;
}

/** One process serving a directory of functions: registry, pools, router and gateway wired together. */
export class StreamfnServer {
  readonly registry: Registry;
  readonly router: Router;
  readonly gateway: Gateway;
  readonly #options: ServerOptions;
  readonly #log: (line: string) => void;
  #closing: Promise<void> | undefined;

  private constructor(options: ServerOptions) {
    this.#options = options;
    this.#log = options.log ?? ((line) => console.log(line));
    this.registry = new Registry({
      dir: options.functionsDir,
      cacheDir: options.cacheDir,
      defaults: options.defaults,
      overrides: options.overrides,
      observer: {
        instanceGone: (pool: FunctionPool, _instance, exit) => {
          if (exit) this.#log(`streamfn: an instance of ${pool.functionName}@${pool.version} went away: ${exit.message}`);
        },
      },
    });
    this.router = new Router(this.registry, options.observer ?? {}, {
      endedRetentionMs: options.endedRetentionMs,
      outputRetention: options.outputRetention,
    });
    this.gateway = new Gateway(this.router, { token: options.token });
    this.gateway.streamHttp(createHttpStreams(this.router, this.registry));
    this.gateway.route("GET", "/healthz", (_req, res) => sendJson(res, 200, { ok: true }));
    this.gateway.route("GET", "/v1/status", (_req, res) => sendJson(res, 200, buildStatus(this)));
  }

  /** Loads the functions, then listens. Functions that fail to load are logged; the rest serve. */
  static async start(options: ServerOptions): Promise<StreamfnServer> {
    const server = new StreamfnServer(options);
    const { failed } = await server.registry.loadAll();
    for (const f of failed) server.#log(`streamfn: ${f.error.code}: ${f.error.message}`);
    await new Promise<void>((resolve, reject) => {
      server.gateway.server.once("error", reject);
      server.gateway.server.listen(options.port ?? 8080, options.host ?? "127.0.0.1", () => {
        server.gateway.server.off("error", reject);
        resolve();
      });
    });
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
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
