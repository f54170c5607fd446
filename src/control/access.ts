import type { IncomingMessage } from "node:http";
import { isIP } from "node:net";
import { callerOf } from "../auth/authorizer.js";
import { StreamfnError } from "../api/errors.js";

/** True for addresses only this machine can reach: 127.0.0.0/8, ::1 (also IPv4-mapped) and `localhost`. */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[(.*)\]$/, "$1");
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  if (isIP(h) === 4) return h.startsWith("127.");
  if (isIP(h) !== 6) return false;
  // The URL parser writes IPv6 in one canonical form: ::1, and ::ffff:7fxx:xxxx for 127.x.x.x.
  const canonical = new URL(`http://[${h}]/`).hostname;
  return canonical === "[::1]" || canonical.startsWith("[::ffff:7f");
}

export interface ControlAccessOptions {
  /** Whether the server has tokens; the gateway already checked the request's role against route-roles.ts. */
  hasTokens: boolean;
  /** Whether other machines can reach the server. */
  exposed: boolean;
}

/**
 * Who may change what is served. Uploading a function runs its code on this machine, so a
 * change needs an admin token, and a server others can reach without any token refuses
 * changes even though reading works. The gateway checks this first (route-roles.ts); the
 * handlers check again so that a route registered under a wrong row still cannot change things.
 */
export class ControlAccess {
  constructor(readonly options: ControlAccessOptions) {}

  /** Throws FORBIDDEN unless the request may make a change (`what` names it). */
  assertMayChange(what: string, req: IncomingMessage): void {
    const caller = callerOf(req);
    if (this.options.hasTokens) {
      if (caller?.may("admin")) return;
      throw new StreamfnError("FORBIDDEN", `${what} needs a token with the admin role${caller?.token ? `; token "${caller.token.name}" has ${[...caller.token.roles].join(", ")}` : ""}`);
    }
    if (!this.options.exposed) return;
    throw new StreamfnError(
      "FORBIDDEN",
      `${what} is refused: this server can be reached from other machines and has no token, ` +
        `and a change through the control API runs code here; restart it with --auth (or --token, STREAMFN_TOKEN)`,
    );
  }
}
