import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { StreamfnError } from "../api/errors.js";
import { combineAuth } from "../auth/auth-config.js";
import type { AuthConfig } from "../auth/auth-config.js";
import { Authorizer } from "../auth/authorizer.js";
import type { RateLimits } from "../auth/rate-limits.js";
import { hasRule } from "../auth/route-roles.js";
import type { StreamTable } from "../router/stream-table.js";
import { sendError } from "./http-util.js";
import { parseStreamPath } from "./routes.js";
import type { StreamRoute } from "./routes.js";
import { WebSocketGateway, rejectUpgrade } from "./websocket.js";

/**
 * An HTTP handler for a path the gateway does not own (status, metrics, dashboard, control).
 * `params` holds the decoded `:name` segments of the route's pattern.
 */
export type HttpHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  params: Record<string, string>,
) => void | Promise<void>;

interface PatternRoute {
  method: string;
  /** Literal segments, or `:name` for a parameter. */
  segments: string[];
  handler: HttpHandler;
}

/** Handles stream requests made over plain HTTP (not WebSocket). */
export type StreamHttpHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  route: StreamRoute,
  url: URL,
) => void | Promise<void>;

export interface GatewayOptions {
  /**
   * The single legacy token: a token with every role. With it or `auth`, every request but the
   * health check needs `Authorization: Bearer <token>` (or `?token=` for browsers' WebSockets).
   */
  token?: string;
  /** Tokens with roles (an auth file, checked); see route-roles.ts for what each role opens. */
  auth?: AuthConfig;
  /** Rate limits per client address (already merged over the defaults); none when empty. */
  addressLimits?: RateLimits;
  /** Whether other machines can reach the server: without tokens, admin routes are then refused. */
  exposed?: boolean;
  /** WebSocket keep-alive: a peer silent to pings for this long is disconnected. Default 30 000; 0 disables. */
  pingIntervalMs?: number;
}

/** Every protocol on one port: WebSocket upgrades and HTTP requests, with one auth check in front. */
export class Gateway {
  readonly server: Server;
  readonly websocket: WebSocketGateway;
  readonly #routes = new Map<string, HttpHandler>();
  readonly #patterns: PatternRoute[] = [];
  /** Exact paths answered without the token: they hold no data (the health check, the dashboard's page and assets). */
  #streamHttp: StreamHttpHandler | undefined;
  readonly #registered: { method: string; path: string }[] = [];
  readonly authorizer: Authorizer;

  constructor(table: StreamTable, options: GatewayOptions = {}) {
    this.authorizer = new Authorizer({
      auth: combineAuth(options.token, options.auth),
      addressLimits: options.addressLimits ?? {},
      exposed: options.exposed ?? false,
    });
    this.websocket = new WebSocketGateway(table, options.pingIntervalMs);
    this.server = createServer({ keepAliveTimeout: 65_000, requestTimeout: 0 }, (req, res) => {
      void this.#onRequest(req, res);
    });
    this.server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#onUpgrade(req, socket, head));
  }

  /**
   * Registers `GET`/`POST`… `path`: an exact path, or a pattern with `:name` segments
   * (`/v1/functions/:fn`). Patterns are tried before the stream routes, so a control route
   * such as `DELETE /v1/functions/:fn/streams/:id` takes precedence over the stream protocol's
   * handling of that path; methods a pattern does not have fall through to it.
   */
  route(method: string, path: string, handler: HttpHandler): void {
    // Every route has a row in the one table of who may call what; one without is a bug here.
    if (!hasRule(method, path)) throw new Error(`${method} ${path} has no role in src/auth/route-roles.ts`);
    this.#registered.push({ method, path });
    if (!path.includes("/:")) {
      this.#routes.set(`${method} ${path}`, handler);
      return;
    }
    this.#patterns.push({ method, segments: path.split("/"), handler });
  }

  /** The routes registered with route() (not the stream protocol's, which route-roles.ts lists itself). */
  get registeredRoutes(): readonly { method: string; path: string }[] {
    return this.#registered;
  }

  #matchPattern(method: string, pathname: string): { handler: HttpHandler; params: Record<string, string> } | undefined {
    if (this.#patterns.length === 0) return undefined;
    const parts = pathname.split("/");
    outer: for (const p of this.#patterns) {
      if (p.method !== method || p.segments.length !== parts.length) continue;
      const params: Record<string, string> = {};
      for (let i = 0; i < parts.length; i++) {
        const seg = p.segments[i]!;
        const part = parts[i]!;
        if (seg.startsWith(":")) {
          if (part === "") continue outer;
          params[seg.slice(1)] = safeDecode(part);
        } else if (seg !== part) continue outer;
      }
      return { handler: p.handler, params };
    }
    return undefined;
  }

  /** Sets who answers plain-HTTP requests under /v1/functions/:fn/streams. */
  streamHttp(handler: StreamHttpHandler): void {
    this.#streamHttp = handler;
  }

  async #onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? "/", "http://localhost");
      this.authorizer.authorize(req, req.method ?? "GET", url);
      const pattern = this.#matchPattern(req.method ?? "GET", url.pathname);
      if (pattern) {
        await pattern.handler(req, res, url, pattern.params);
        return;
      }
      const route = parseStreamPath(url.pathname);
      if (route) {
        if (!this.#streamHttp) {
          throw new StreamfnError("NOT_FOUND", "streams over plain HTTP are not enabled on this server; use WebSocket");
        }
        await this.#streamHttp(req, res, route, url);
        return;
      }
      const handler = this.#routes.get(`${req.method} ${url.pathname}`);
      if (handler) {
        await handler(req, res, url, {});
        return;
      }
      const anyMethod =
        [...this.#routes.keys()].some((k) => k.endsWith(` ${url.pathname}`)) ||
        this.#patterns.some((p) => this.#matchPattern(p.method, url.pathname) !== undefined);
      if (anyMethod) throw new StreamfnError("METHOD_NOT_ALLOWED", `${req.method} is not allowed on ${url.pathname}`);
      throw new StreamfnError("NOT_FOUND", `nothing at ${req.method} ${url.pathname}`);
    } catch (err) {
      sendError(res, err);
    }
  }

  #onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on("error", () => socket.destroy());
    try {
      const url = new URL(req.url ?? "/", "http://localhost");
      this.authorizer.authorize(req, "WS", url);
      const route = parseStreamPath(url.pathname);
      if (!route || route.action !== undefined) {
        throw new StreamfnError(
          "NOT_FOUND",
          `WebSocket streams connect to /v1/functions/:fn/streams/:streamId?, not ${url.pathname}`,
        );
      }
      this.websocket.upgrade(req, socket, head, route);
    } catch (err) {
      rejectUpgrade(socket, err);
    }
  }

  async close(): Promise<void> {
    await this.websocket.close();
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}


function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
