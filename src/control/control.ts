import type { ServerLogger } from "../server/logger.js";
import type { Gateway } from "../gateway/gateway.js";
import type { Registry } from "../registry/registry.js";
import type { StreamTable } from "../router/stream-table.js";
import type { ServerStatus } from "../server/status.js";
import { ControlAccess } from "./access.js";
import { describeFunction, listFunctions, retireFunction, uploadFunction } from "./functions.js";
import { cancelStream, listStreams } from "./streams.js";

export interface ControlOptions {
  registry: Registry;
  table: StreamTable;
  status(): ServerStatus;
  /** Whether the server has tokens: changes then need the admin role. */
  hasTokens: boolean;
  /** Whether other machines can reach the server: without tokens, changes are then refused. */
  exposed: boolean;
  logger: ServerLogger;
}

/**
 * The control API (docs/http.md, "Control API"): list and inspect functions, upload and retire
 * them, list and cancel streams, over the server's own port and token.
 */
export function registerControl(gateway: Gateway, options: ControlOptions): void {
  const access = new ControlAccess({ hasTokens: options.hasTokens, exposed: options.exposed });
  const deps = { ...options, access };
  gateway.route("GET", "/v1/functions", (_req, res) => listFunctions(deps, res));
  gateway.route("GET", "/v1/functions/:fn", (_req, res, _url, p) => describeFunction(deps, res, p.fn!));
  gateway.route("PUT", "/v1/functions/:fn", (req, res, url, p) => uploadFunction(deps, req, res, url, p.fn!));
  gateway.route("DELETE", "/v1/functions/:fn", (req, res, _url, p) => retireFunction(deps, req, res, p.fn!));
  gateway.route("GET", "/v1/functions/:fn/streams", (_req, res, url, p) => listStreams(deps, res, url, p.fn!));
  gateway.route("DELETE", "/v1/functions/:fn/streams/:id", (req, res, url, p) => cancelStream(deps, req, res, url, p.fn!, p.id!));
}
