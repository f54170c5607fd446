import { StreamfnError } from "../api/errors.js";
import { isLoopbackHost } from "../control/access.js";
import type { AuthConfig } from "./auth-config.js";
import { kExposedAddressLimits, mergeLimits } from "./rate-limits.js";
import type { RateLimits } from "./rate-limits.js";

/**
 * A server without tokens takes streams for every function and shows every output to anyone
 * who reaches it: it listens only on loopback unless told `insecure`.
 */
export function assertSafeHost(host: string, auth: AuthConfig | undefined, insecure: boolean | undefined): void {
  if (isLoopbackHost(host) || (auth && auth.tokens.length > 0) || insecure) return;
  throw new StreamfnError(
    "INVALID_OPTIONS",
    `refusing to listen on --host ${host} without tokens: anyone who can reach it could stream to every function and read every output. ` +
      `Configure tokens (--auth <file> or --token), or pass --insecure to listen there anyway (on a network you trust)`,
  );
}

export function logInsecure(logger: { warn(obj: object, msg: string): void }, host: string): void {
  logger.warn(
    { host, insecure: true },
    "listening on a non-loopback address without tokens (--insecure): anyone who reaches it may stream and read; control changes are refused",
  );
}

/** Per-address limits: the built-in defaults (only off loopback), under the auth file's, under the server's own. */
export function addressLimits(host: string, auth: AuthConfig | undefined, limits: RateLimits | undefined): RateLimits {
  return mergeLimits(isLoopbackHost(host) ? undefined : kExposedAddressLimits, auth?.addressLimits, limits);
}
