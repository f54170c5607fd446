import { readFileSync } from "node:fs";
import { StreamfnError } from "../api/errors.js";
import { validateOptions } from "../api/options.js";
import type { StreamFunctionOptions } from "../api/types.js";

/** The config file: server settings, defaults for every function, and per-function overrides. */
export interface ConfigFile {
  port?: number;
  host?: string;
  token?: string;
  defaults?: StreamFunctionOptions;
  functions?: Record<string, StreamFunctionOptions>;
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
  const known = new Set(["port", "host", "token", "defaults", "functions"]);
  for (const key of Object.keys(cfg)) {
    if (!known.has(key)) throw new StreamfnError("INVALID_OPTIONS", `config ${path}: unknown key "${key}" (known: ${[...known].join(", ")})`);
  }
  const out: ConfigFile = {};
  // Checked here, so a typo fails with its name instead of a NaN port or an ignored token.
  if (cfg.port !== undefined) out.port = parsePort(cfg.port, `config ${path}: port`);
  for (const key of ["host", "token"] as const) {
    const v = cfg[key];
    if (v === undefined) continue;
    if (typeof v !== "string" || v === "") {
      throw new StreamfnError("INVALID_OPTIONS", `config ${path}: "${key}" must be a non-empty string, got ${JSON.stringify(v)}`);
    }
    out[key] = v;
  }
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

/** Parses `--set name=value` (every function) or `--set fn.name=value` (one function). */
export function applySetting(
  setting: string,
  defaults: Record<string, unknown>,
  overrides: Record<string, Record<string, unknown>>,
): void {
  const m = /^(?:([A-Za-z0-9_-]+)\.)?([A-Za-z]+)=(.*)$/.exec(setting);
  if (!m) throw new StreamfnError("INVALID_OPTIONS", `--set expects option=value or function.option=value, got "${setting}"`);
  const [, fn, key, raw] = m;
  const value: unknown = /^-?\d+$/.test(raw!) ? Number(raw) : raw;
  const target = fn ? (overrides[fn] ??= {}) : defaults;
  validateOptions({ [key!]: value }, `--set ${setting}`);
  target[key!] = value;
}

/** A small count 0-999 for a flag such as --spare-threads. */
export function parseCount(value: string, flag: string): number {
  if (!/^\d{1,3}$/.test(value)) throw new StreamfnError("INVALID_OPTIONS", `${flag} takes a count 0-999, got "${value}"`);
  return Number(value);
}
