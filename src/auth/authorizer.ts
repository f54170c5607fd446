import type { IncomingMessage } from "node:http";
import { timingSafeEqual } from "node:crypto";
import { StreamfnError } from "../api/errors.js";
import { sha256 } from "./auth-config.js";
import type { AuthConfig, Role, TokenEntry } from "./auth-config.js";
import { RateLimiter, mergeLimits } from "./rate-limits.js";
import type { ClientLimits, RateLimits } from "./rate-limits.js";
import { kUnlistedRule, matchRoute } from "./route-roles.js";

/** Who made a request, as far as the server knows, and the limits it is held to. */
export interface Caller {
  /** The token's entry; undefined on a server without tokens (everyone may do everything there). */
  token: TokenEntry | undefined;
  /** The client's address as the socket saw it. */
  address: string;
  /** undefined: no rate limit applies to this caller. */
  limits: ClientLimits | undefined;
  /** Whether the caller has `role` (admin has every role); for produce, to `fn` when given. */
  may(role: Role, fn?: string): boolean;
}

const kCaller = Symbol("streamfn.caller");

/** The caller the gateway attached to this request (undefined for requests it did not see). */
export function callerOf(req: IncomingMessage): Caller | undefined {
  return (req as unknown as { [kCaller]?: Caller })[kCaller];
}

export interface AuthorizerOptions {
  /** Tokens and their roles; undefined: a server without tokens. */
  auth: AuthConfig | undefined;
  /** Limits per client address (merged over the server's defaults already). */
  addressLimits: RateLimits;
  /**
   * Whether other machines can reach the server. Without tokens, it then refuses admin
   * routes: a change through the control API runs code on this machine.
   */
  exposed: boolean;
}

/**
 * The one access check in front of every request: finds the token, the route's row in
 * route-roles.ts, and refuses with 401 (no or unknown token) or 403 (a role or function the
 * token lacks). Tokens are compared as SHA-256 digests in constant time, against every
 * configured token, and appear in no message.
 */
export class Authorizer {
  readonly #auth: AuthConfig | undefined;
  readonly #exposed: boolean;
  readonly limiter: RateLimiter;

  constructor(options: AuthorizerOptions) {
    this.#auth = options.auth && options.auth.tokens.length > 0 ? options.auth : undefined;
    this.#exposed = options.exposed;
    const byName = new Map((this.#auth?.tokens ?? []).map((t) => [t.name, t]));
    const tokenDefault = this.#auth?.tokenLimits;
    this.limiter = new RateLimiter({
      address: options.addressLimits,
      token: (name) => mergeLimits(tokenDefault, byName.get(name)?.limits),
    });
  }

  /** Whether the server has tokens at all. */
  get hasTokens(): boolean {
    return this.#auth !== undefined;
  }

  /**
   * Checks `method` (`WS` for an upgrade) on `url` and attaches the caller to `req`.
   * Throws UNAUTHORIZED or FORBIDDEN.
   */
  authorize(req: IncomingMessage, method: string, url: URL): Caller {
    const match = matchRoute(method, url.pathname);
    const rule = match?.rule ?? kUnlistedRule;
    const fn = match?.fn;
    const token = this.#auth ? this.#findToken(req, url) : undefined;
    const address = req.socket.remoteAddress ?? "unknown";
    const caller: Caller = {
      token,
      address,
      limits: undefined,
      may: (role, f) => mayDo(this.#auth === undefined, token, role, f),
    };
    if (rule.roles.length > 0) {
      if (this.#auth && !token) {
        const given = tokenOf(req, url) !== undefined;
        throw new StreamfnError(
          "UNAUTHORIZED",
          given
            ? `unknown token: ${rule.what} needs a token with the ${rolesText(rule.roles)} role`
            : `missing token: ${rule.what} needs a token with the ${rolesText(rule.roles)} role; send Authorization: Bearer <token>`,
        );
      }
      // (Only listed admin routes: an unknown path on a server without tokens is a plain 404.)
      if (!this.#auth && this.#exposed && match && rule.roles.includes("admin")) {
        throw new StreamfnError(
          "FORBIDDEN",
          `${rule.what} is refused: this server can be reached from other machines and has no token, ` +
            `and a change through the control API runs code here; restart it with --auth (or --token, STREAMFN_TOKEN)`,
        );
      }
      if (token && !rule.roles.some((r) => mayDo(false, token, r, fn))) {
        throw new StreamfnError("FORBIDDEN", forbiddenMessage(token, rule.roles, rule.what, fn));
      }
    }
    caller.limits = this.limiter.forClient(address, token?.name);
    (req as unknown as { [kCaller]?: Caller })[kCaller] = caller;
    return caller;
  }

  #findToken(req: IncomingMessage, url: URL): TokenEntry | undefined {
    const given = tokenOf(req, url);
    if (given === undefined) return undefined;
    // Digests are all 32 bytes: timingSafeEqual needs equal lengths, and the time taken says
    // nothing about the given token's length or how much of it matched. Every entry is
    // compared, so the time does not say which one matched either.
    const digest = sha256(given);
    let found: TokenEntry | undefined;
    for (const t of this.#auth!.tokens) if (timingSafeEqual(digest, t.hash) && !found) found = t;
    return found;
  }
}

/** `Authorization: Bearer <token>`, else `?token=` (for browsers' WebSockets and the dashboard). */
function tokenOf(req: IncomingMessage, url: URL): string | undefined {
  const header = req.headers.authorization;
  if (header !== undefined && /^bearer /i.test(header)) return header.slice(7).trim() || undefined;
  const q = url.searchParams.get("token");
  return q === null || q === "" ? undefined : q;
}

function mayDo(open: boolean, token: TokenEntry | undefined, role: Role, fn: string | undefined): boolean {
  if (open) return true;
  if (!token) return false;
  if (token.roles.has("admin")) return true;
  if (!token.roles.has(role)) return false;
  if (role === "produce" && fn !== undefined && token.functions && !token.functions.has(fn)) return false;
  return true;
}

function rolesText(roles: readonly string[]): string {
  return roles.length === 1 ? roles[0]! : `${roles.slice(0, -1).join(", ")} or ${roles[roles.length - 1]}`;
}

function forbiddenMessage(token: TokenEntry, roles: readonly Role[], what: string, fn: string | undefined): string {
  const has = [...token.roles].join(", ");
  if (roles.includes("produce") && token.roles.has("produce") && fn !== undefined && token.functions) {
    return (
      `token "${token.name}" may not produce to function "${fn}": it may produce only to ${[...token.functions].join(", ")}` +
      (roles.length > 1 ? ` (or needs the ${rolesText(roles.filter((r) => r !== "produce"))} role for ${what})` : "")
    );
  }
  return `token "${token.name}" (roles: ${has}) lacks the ${rolesText(roles)} role needed for ${what}`;
}
