import type { Role } from "./auth-config.js";

/**
 * Who may call what: every route the gateway answers, with the role it needs. The gateway
 * refuses to register a route that is not here, and a request that matches no row needs
 * `admin` (so a route added without a row is closed, not open). `WS` is a WebSocket upgrade.
 *
 * `roles` is any-of. `fn`: the route names a function (`:fn`), and a `produce` token narrowed
 * to some functions may use it only for those.
 */
export interface RouteRule {
  method: "GET" | "POST" | "PUT" | "DELETE" | "WS";
  path: string;
  /** Empty: no token needed (health checks). */
  roles: readonly Role[];
  what: string;
}

const read: Role[] = ["read"];
const produce: Role[] = ["produce"];
const admin: Role[] = ["admin"];
/**
 * A producer gets its stream's outputs and status on every protocol it streams over; these
 * routes give it the same over HTTP (POSTed events, outputs as server-sent events).
 */
const readOrProduce: Role[] = ["read", "produce"];

export const kRouteRules: readonly RouteRule[] = [
  { method: "GET", path: "/healthz", roles: [], what: "the health check" },
  // The page and its script files hold no data (the page asks for a token, then reads the feed).
  { method: "GET", path: "/", roles: [], what: "the dashboard page" },
  { method: "GET", path: "/dashboard/assets/:package/:file", roles: [], what: "the dashboard's script files" },
  { method: "GET", path: "/v1/dashboard/feed", roles: read, what: "the dashboard's live data" },
  { method: "GET", path: "/v1/status", roles: read, what: "the server status" },
  { method: "GET", path: "/metrics", roles: read, what: "the metrics" },
  { method: "GET", path: "/v1/functions", roles: read, what: "the function list" },
  { method: "GET", path: "/v1/functions/:fn", roles: read, what: "a function's description" },
  { method: "PUT", path: "/v1/functions/:fn", roles: admin, what: "deploying a function" },
  { method: "DELETE", path: "/v1/functions/:fn", roles: admin, what: "retiring a function" },
  { method: "GET", path: "/v1/functions/:fn/logs", roles: read, what: "a function's logs" },
  { method: "GET", path: "/v1/functions/:fn/streams", roles: read, what: "a function's stream list" },
  { method: "POST", path: "/v1/functions/:fn/streams", roles: produce, what: "opening a stream" },
  { method: "PUT", path: "/v1/functions/:fn/streams", roles: produce, what: "opening a stream" },
  { method: "WS", path: "/v1/functions/:fn/streams", roles: produce, what: "opening a stream" },
  { method: "GET", path: "/v1/functions/:fn/streams/:id", roles: readOrProduce, what: "a stream's status" },
  { method: "POST", path: "/v1/functions/:fn/streams/:id", roles: produce, what: "opening a stream" },
  { method: "PUT", path: "/v1/functions/:fn/streams/:id", roles: produce, what: "opening a stream" },
  { method: "WS", path: "/v1/functions/:fn/streams/:id", roles: produce, what: "opening a stream" },
  { method: "DELETE", path: "/v1/functions/:fn/streams/:id", roles: admin, what: "cancelling a stream" },
  { method: "POST", path: "/v1/functions/:fn/streams/:id/events", roles: produce, what: "sending events" },
  { method: "POST", path: "/v1/functions/:fn/streams/:id/end", roles: produce, what: "ending a stream's input" },
  { method: "GET", path: "/v1/functions/:fn/streams/:id/outputs", roles: readOrProduce, what: "a stream's outputs" },
  { method: "GET", path: "/v1/functions/:fn/streams/:id/logs", roles: read, what: "a stream's logs" },
];

/** What a request needs when it matches no row: only admin may reach what is not listed. */
export const kUnlistedRule: RouteRule = { method: "GET", path: "(unlisted)", roles: admin, what: "this route" };

export interface RouteMatch {
  rule: RouteRule;
  /** The decoded `:fn` segment, when the route has one. */
  fn: string | undefined;
}

const kSplit = kRouteRules.map((r) => ({ rule: r, segments: r.path.split("/") }));

/** The row for `method` (or `WS`) and `pathname`, with its `:fn`; undefined when none. */
export function matchRoute(method: string, pathname: string): RouteMatch | undefined {
  const parts = pathname.split("/");
  outer: for (const { rule, segments } of kSplit) {
    if (rule.method !== method || segments.length !== parts.length) continue;
    let fn: string | undefined;
    for (let i = 0; i < parts.length; i++) {
      const seg = segments[i]!;
      const part = parts[i]!;
      if (seg.startsWith(":")) {
        if (part === "") continue outer;
        if (seg === ":fn") fn = safeDecode(part);
      } else if (seg !== part) continue outer;
    }
    return { rule, fn };
  }
  return undefined;
}

/** Whether a route pattern registered with the gateway (`/v1/functions/:fn`) has a row for `method`. */
export function hasRule(method: string, path: string): boolean {
  return kRouteRules.some((r) => r.method === method && r.path === path);
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
