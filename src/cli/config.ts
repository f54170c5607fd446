import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { StreamfnError } from "../api/errors.js";
import { loadAuth, parseAuth } from "../auth/auth-config.js";
import type { AuthConfig } from "../auth/auth-config.js";
import { validateLimits } from "../auth/rate-limits.js";
import type { RateLimits } from "../auth/rate-limits.js";
import { validateOptions } from "../api/options.js";
import type { StreamFunctionOptions } from "../api/types.js";
import { validateSources } from "../api/sources.js";
import type { StreamSource } from "../api/sources.js";

/** The config file: server settings, defaults for every function, and per-function overrides. */
export interface ConfigFile {
  port?: number;
  host?: string;
  token?: string;
  /** On SIGINT/SIGTERM, how long running streams get to finish (ms). */
  graceMs?: number;
  /** Tokens with roles: an auth file's path (relative to the config file) or its content inline. */
  auth?: AuthConfig;
  /** Listen on a non-loopback host without tokens. */
  insecure?: boolean;
  /** Rate limits per client address (as the --limit-* flags). */
  limits?: RateLimits;
  defaults?: StreamFunctionOptions;
  functions?: Record<string, StreamFunctionOptions>;
  /** The MQTT broker for sources (as --mqtt). */
  mqtt?: string;
  /** The NATS server for sources (as --nats). */
  nats?: string;
  /** Per function, broker sources that replace the function's own (see docs/connectors.md). */
  sources?: Record<string, StreamSource[]>;
}

export function readConfigFile(path: string): ConfigFile {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new StreamfnError("INVALID_OPTIONS", `cannot read config ${path}: ${(err as Error).message}`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new StreamfnError("INVALID_OPTIONS", `config ${path} must be a JSON object`);
  }
  const cfg = raw as Record<string, unknown>;
  const known = new Set(["port", "host", "token", "auth", "insecure", "limits", "graceMs", "defaults", "functions", "mqtt", "nats", "sources"]);
  for (const key of Object.keys(cfg)) {
    if (!known.has(key)) throw new StreamfnError("INVALID_OPTIONS", `config ${path}: unknown key "${key}" (known: ${[...known].join(", ")})`);
  }
  const out: ConfigFile = {};
  // Checked here, so a typo fails with its name instead of a NaN port or an ignored token.
  if (cfg.port !== undefined) out.port = parsePort(cfg.port, `config ${path}: port`);
  if (cfg.graceMs !== undefined) out.graceMs = parseMs(cfg.graceMs, `config ${path}: graceMs`);
  for (const key of ["host", "token", "mqtt", "nats"] as const) {
    const v = cfg[key];
    if (v === undefined) continue;
    if (typeof v !== "string" || v === "") {
      throw new StreamfnError("INVALID_OPTIONS", `config ${path}: "${key}" must be a non-empty string, got ${JSON.stringify(v)}`);
    }
    out[key] = v;
  }
  if (cfg.auth !== undefined) {
    if (typeof cfg.auth === "string" && cfg.auth !== "") out.auth = loadAuth(resolve(dirname(path), cfg.auth), `config ${path}: auth`);
    else if (typeof cfg.auth === "object" && cfg.auth !== null && !Array.isArray(cfg.auth)) out.auth = parseAuth(cfg.auth, `config ${path}: auth`);
    else throw new StreamfnError("INVALID_OPTIONS", `config ${path}: "auth" must be an auth file's path or an object {"tokens": [...]}`);
  }
  if (cfg.insecure !== undefined) {
    if (typeof cfg.insecure !== "boolean") throw new StreamfnError("INVALID_OPTIONS", `config ${path}: "insecure" must be true or false`);
    out.insecure = cfg.insecure;
  }
  if (cfg.limits !== undefined) out.limits = validateLimits(cfg.limits, `config ${path}: limits`);
  out.defaults = validateOptions(cfg.defaults, `config ${path}: defaults`);
  if (cfg.functions !== undefined) {
    if (typeof cfg.functions !== "object" || cfg.functions === null) {
      throw new StreamfnError("INVALID_OPTIONS", `config ${path}: "functions" must map function names to options`);
    }
    out.functions = {};
    for (const [name, o] of Object.entries(cfg.functions)) {
      out.functions[name] = validateOptions(o, `config ${path}: functions.${name}`);
    }
  }
  if (cfg.sources !== undefined) {
    if (typeof cfg.sources !== "object" || cfg.sources === null || Array.isArray(cfg.sources)) {
      throw new StreamfnError("INVALID_OPTIONS", `config ${path}: "sources" must map function names to lists of sources`);
    }
    out.sources = {};
    for (const [name, list] of Object.entries(cfg.sources)) out.sources[name] = validateSources(list, `config ${path}: sources.${name}`);
  }
  return out;
}

/** A TCP port: an integer 0-65535 (0 picks a free one), given as a number or a decimal string. */
export function parsePort(value: unknown, where: string): number {
  const n = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n > 65535) {
    throw new StreamfnError("INVALID_OPTIONS", `${where} must be an integer from 0 to 65535, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** Parses `--set name=value` (every function) or `--set fn.name=value` (one function); returns the function named, if any. */
export function applySetting(
  setting: string,
  defaults: Record<string, unknown>,
  overrides: Record<string, Record<string, unknown>>,
): string | undefined {
  const m = /^(?:([A-Za-z0-9_-]+)\.)?([A-Za-z]+)=(.*)$/.exec(setting);
  if (!m) throw new StreamfnError("INVALID_OPTIONS", `--set expects option=value or function.option=value, got "${setting}"`);
  const [, fn, key, raw] = m;
  const value: unknown = /^-?\d+$/.test(raw!) ? Number(raw) : raw === "true" ? true : raw === "false" ? false : raw;
  const target = fn ? (overrides[fn] ??= {}) : defaults;
  validateOptions({ [key!]: value }, `--set ${setting}`);
  target[key!] = value;
  return fn;
}

/** A duration in milliseconds: an integer 0 to one day, given as a number or a decimal string. */
export function parseMs(value: unknown, where: string): number {
  const n = typeof value === "number" ? value : typeof value === "string" && /^\d{1,9}$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > 86_400_000) {
    throw new StreamfnError("INVALID_OPTIONS", `${where} must be milliseconds, an integer 0-86400000, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** A rate limit's value for a --limit-* flag: an integer >= 0 (0: no limit). */
export function parseLimit(value: string, flag: string): number {
  if (!/^\d{1,12}$/.test(value)) throw new StreamfnError("INVALID_OPTIONS", `${flag} takes a whole number >= 0 (0: no limit), got "${value}"`);
  return Number(value);
}

/** A small count 0-999 for a flag such as --spare-threads. */
export function parseCount(value: string, flag: string): number {
  if (!/^\d{1,3}$/.test(value)) throw new StreamfnError("INVALID_OPTIONS", `${flag} takes a count 0-999, got "${value}"`);
  return Number(value);
}

/** Where a per-function setting came from, for a warning that names it. */
export interface FunctionSetting {
  name: string;
  /** e.g. `--set ecoh.idleTimeoutMs=1` or `config streamfn.json: functions.ecoh`. */
  where: string;
}

/**
 * Warnings for per-function settings that name no served function: usually a typo. Each
 * suggests the closest served name when one is near.
 */
export function unknownFunctionWarnings(settings: FunctionSetting[], served: string[]): string[] {
  const known = new Set(served);
  const out: string[] = [];
  for (const s of settings) {
    if (known.has(s.name)) continue;
    const near = closestName(s.name, served);
    out.push(
      `streamfn: warning: ${s.where} names "${s.name}", which is not a served function` +
        (near ? ` (did you mean "${near}"?)` : "") +
        `; a function that appears later under that name will still take it`,
    );
  }
  return out;
}

/** The served name within a small edit distance of `name` (a third of its length, at least 1), if any. */
export function closestName(name: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(name.length / 3)) + 1;
  for (const c of candidates) {
    const d = editDistance(name.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

/** Levenshtein distance, counting a swap of two neighbours as one edit (`ecoh` → `echo`). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}
