import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { StreamfnError } from "../api/errors.js";
import { kLimitNames, validateLimits } from "./rate-limits.js";
import type { RateLimits } from "./rate-limits.js";

/**
 * What a token may do. `admin` includes the other two; `produce` may be narrowed to some
 * functions. The route each role opens is in route-roles.ts.
 */
export type Role = "produce" | "read" | "admin";
export const kRoles: readonly Role[] = ["produce", "read", "admin"];

/** One token of an auth file, checked. The token itself is only kept as its SHA-256. */
export interface TokenEntry {
  /** For messages and logs: the token itself is never written anywhere. */
  name: string;
  /** SHA-256 of the token's UTF-8 bytes. */
  hash: Buffer;
  roles: ReadonlySet<Role>;
  /** `produce` only to these functions; undefined: to every function. */
  functions: ReadonlySet<string> | undefined;
  /** This token's own rate limits (over the file's `limits.token` defaults). */
  limits: RateLimits | undefined;
}

/** A checked auth file (or the legacy single token, which is one entry with every role). */
export interface AuthConfig {
  tokens: TokenEntry[];
  /** Rate limits of each client address (over the server's defaults). */
  addressLimits?: RateLimits;
  /** Rate limits of each token that has none of its own. */
  tokenLimits?: RateLimits;
}

export function sha256(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}

/** The single `--token` / STREAMFN_TOKEN: one principal that may do everything. */
export function legacyTokenEntry(token: string): TokenEntry {
  if (token === "") throw new StreamfnError("INVALID_OPTIONS", "--token (or STREAMFN_TOKEN) must not be empty");
  return { name: "token", hash: sha256(token), roles: new Set(kRoles), functions: undefined, limits: undefined };
}

/**
 * `--auth` / STREAMFN_AUTH: a path to an auth file, or (starting with `{`) the file's JSON
 * itself, which suits a secret store that hands out environment variables.
 */
export function loadAuth(value: string, where: string): AuthConfig {
  const inline = value.trimStart().startsWith("{");
  const label = inline ? where : `auth file ${value}`;
  let text: string;
  if (inline) text = value;
  else {
    try {
      text = readFileSync(value, "utf8");
    } catch (err) {
      throw new StreamfnError("INVALID_OPTIONS", `cannot read ${label} (${where}): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    // The parser's message quotes the text near the error; that text may be a token.
    throw new StreamfnError("INVALID_OPTIONS", `${label} is not valid JSON${inline ? "" : ` (${(err as Error).message.replace(/"[^"]*"/g, "…")})`}`);
  }
  return parseAuth(raw, label);
}

const kFileKeys = ["tokens", "limits"];
const kTokenKeys = ["name", "token", "roles", "functions", "limits"];
const kSha256 = /^sha256:([0-9a-f]{64})$/;

/** Checks an auth file's content strictly: every problem names the file and the entry. */
export function parseAuth(raw: unknown, label: string): AuthConfig {
  const fail = (msg: string): never => {
    throw new StreamfnError("INVALID_OPTIONS", `${label}: ${msg}`);
  };
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) fail(`must be a JSON object with "tokens"`);
  const obj = raw as Record<string, unknown>;
  for (const k of Object.keys(obj)) if (!kFileKeys.includes(k)) fail(`unknown key "${k}" (known: ${kFileKeys.join(", ")})`);
  if (!Array.isArray(obj.tokens)) fail(`"tokens" must be an array of {name, token, roles}`);
  const tokens: TokenEntry[] = [];
  const names = new Map<string, number>();
  const hashes = new Map<string, number>();
  (obj.tokens as unknown[]).forEach((t, i) => {
    let at = `tokens[${i}]`;
    if (typeof t !== "object" || t === null || Array.isArray(t)) fail(`${at} must be an object {name, token, roles}`);
    const e = t as Record<string, unknown>;
    if (typeof e.name === "string" && e.name !== "") at += ` ("${e.name}")`;
    for (const k of Object.keys(e)) if (!kTokenKeys.includes(k)) fail(`${at}: unknown key "${k}" (known: ${kTokenKeys.join(", ")})`);
    if (typeof e.name !== "string" || !/^[A-Za-z0-9._:@-]{1,64}$/.test(e.name)) {
      fail(`${at}: "name" must be 1-64 characters of A-Z a-z 0-9 . _ : @ - (it names the token in messages and logs)`);
    }
    const name = e.name as string;
    if (names.has(name)) fail(`${at}: duplicate name "${name}" (also tokens[${names.get(name)}])`);
    names.set(name, i);
    if (typeof e.token !== "string" || e.token.trim() === "") fail(`${at}: "token" must be a non-empty string (or "sha256:<64 hex digits>")`);
    const token = e.token as string;
    let hash: Buffer;
    if (token.startsWith("sha256:")) {
      const m = kSha256.exec(token);
      if (!m) fail(`${at}: "token" starts with sha256: but is not sha256: followed by 64 lower-case hex digits`);
      hash = Buffer.from(m![1]!, "hex");
    } else {
      hash = sha256(token);
    }
    const hex = hash.toString("hex");
    // Two entries with one secret would make the roles a request gets depend on file order.
    if (hashes.has(hex)) fail(`${at}: duplicate token (the same secret as tokens[${hashes.get(hex)}])`);
    hashes.set(hex, i);
    if (!Array.isArray(e.roles) || e.roles.length === 0) fail(`${at}: "roles" must be a non-empty array of ${kRoles.join(", ")}`);
    const roles = new Set<Role>();
    for (const r of e.roles as unknown[]) {
      if (!kRoles.includes(r as Role)) fail(`${at}: unknown role ${JSON.stringify(r)} (roles: ${kRoles.join(", ")})`);
      roles.add(r as Role);
    }
    let functions: Set<string> | undefined;
    if (e.functions !== undefined) {
      if (!roles.has("produce") || roles.has("admin")) {
        fail(`${at}: "functions" narrows the produce role, and this token ${roles.has("admin") ? "is admin (which may do everything)" : "has no produce role"}`);
      }
      if (!Array.isArray(e.functions) || e.functions.length === 0 || !e.functions.every((f) => typeof f === "string" && f !== "")) {
        fail(`${at}: "functions" must be a non-empty array of function names`);
      }
      functions = new Set(e.functions as string[]);
    }
    const limits = e.limits === undefined ? undefined : validateLimits(e.limits, `${label}: ${at}.limits`);
    tokens.push({ name, hash, roles, functions, limits });
  });
  if (tokens.length === 0) fail(`"tokens" is empty: a server with an auth file and no token would refuse every request`);
  const out: AuthConfig = { tokens };
  if (obj.limits !== undefined) {
    const l = obj.limits;
    if (typeof l !== "object" || l === null || Array.isArray(l)) fail(`"limits" must be {"address": {...}, "token": {...}}`);
    for (const k of Object.keys(l as object)) {
      if (k !== "address" && k !== "token") fail(`limits: unknown key "${k}" (known: address, token; each takes ${kLimitNames.join(", ")})`);
    }
    const { address, token } = l as Record<string, unknown>;
    if (address !== undefined) out.addressLimits = validateLimits(address, `${label}: limits.address`);
    if (token !== undefined) out.tokenLimits = validateLimits(token, `${label}: limits.token`);
  }
  return out;
}

/** The legacy token and an auth file together; a secret in both is refused like a duplicate. */
export function combineAuth(token: string | undefined, auth: AuthConfig | undefined): AuthConfig | undefined {
  // An empty STREAMFN_TOKEN has always meant no token.
  if (token === "") token = undefined;
  if (token === undefined && auth === undefined) return undefined;
  const tokens = [...(auth?.tokens ?? [])];
  if (token !== undefined) {
    const legacy = legacyTokenEntry(token);
    const clash = tokens.find((t) => t.hash.equals(legacy.hash));
    if (clash) throw new StreamfnError("INVALID_OPTIONS", `--token (or STREAMFN_TOKEN) is the same secret as auth token "${clash.name}"`);
    if (tokens.some((t) => t.name === legacy.name)) {
      throw new StreamfnError("INVALID_OPTIONS", `the auth file names a token "token", the name --token (or STREAMFN_TOKEN) takes; rename it`);
    }
    tokens.push(legacy);
  }
  return { ...auth, tokens };
}
