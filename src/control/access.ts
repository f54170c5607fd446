import { isIP } from "node:net";
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
  /** The server's token; when set the gateway already checked it on every request. */
  token: string | undefined;
  /** Whether other machines can reach the server. */
  exposed: boolean;
}

/**
 * Who may change what is served. Uploading a function runs its code on this machine, so on a
 * server others can reach, changes need a token even though reading does not.
 */
export class ControlAccess {
  constructor(readonly options: ControlAccessOptions) {}

  /** Throws FORBIDDEN for a change on a server reachable from the network without a token. */
  assertMayChange(what: string): void {
    if (this.options.token || !this.options.exposed) return;
    throw new StreamfnError(
      "FORBIDDEN",
      `${what} is refused: this server can be reached from other machines and has no token, ` +
        `and a change through the control API runs code here; restart it with --token (or STREAMFN_TOKEN)`,
    );
  }
}
