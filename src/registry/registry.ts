import { readdir } from "node:fs/promises";
import { basename, extname, join, resolve } from "node:path";
import { StreamfnError } from "../api/errors.js";
import { resolveOptions, validateOptions } from "../api/options.js";
import type { StreamFunctionOptions } from "../api/types.js";
import { FunctionPool } from "../instances/pool.js";
import type { PoolObserver } from "../instances/pool.js";
import type { FunctionCatalog } from "../router/router.js";
import { bundleFunction } from "./bundler.js";
import { probeFunction } from "./probe.js";

export interface RegistryOptions {
  dir: string;
  /** Where bundles are written. Default `<dir>/.streamfn`. */
  cacheDir?: string;
  /** Applied under every function's own options. */
  defaults?: StreamFunctionOptions;
  /** Per function name, applied over the function's own options. */
  overrides?: Record<string, StreamFunctionOptions>;
  observer?: PoolObserver;
}

export interface DeployedFunction {
  name: string;
  file: string;
  current: FunctionPool;
  /** Older versions still finishing their streams. */
  retiring: Set<FunctionPool>;
}

const kFunctionFile = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\.(ts|mts|js|mjs)$/;
const kSkip = /(\.d\.ts|\.test\.[a-z]+|\.spec\.[a-z]+)$/;

/** True for file names the registry serves as functions: `name.ts` → function `name`. */
export function functionNameOf(file: string): string | undefined {
  const base = basename(file);
  if (!kFunctionFile.test(base) || kSkip.test(base)) return undefined;
  return base.slice(0, -extname(base).length);
}

/**
 * The functions of one directory, one file each. Bundles and checks each (in a throwaway
 * sandbox: user code never runs on the router's thread), keeps a pool per version, and
 * moves new streams to a new version while the old one drains.
 */
export class Registry implements FunctionCatalog {
  readonly dir: string;
  readonly cacheDir: string;
  readonly #functions = new Map<string, DeployedFunction>();
  readonly #options: RegistryOptions;
  /** One deploy at a time per function, in order. */
  readonly #deploying = new Map<string, Promise<unknown>>();

  constructor(options: RegistryOptions) {
    this.#options = options;
    this.dir = resolve(options.dir);
    this.cacheDir = options.cacheDir ? resolve(options.cacheDir) : join(this.dir, ".streamfn");
    for (const [name, o] of Object.entries(options.overrides ?? {})) validateOptions(o, `overrides for ${name}`);
    validateOptions(options.defaults, "server defaults");
  }

  current(name: string): FunctionPool | undefined {
    return this.#functions.get(name)?.current;
  }

  functions(): DeployedFunction[] {
    return [...this.#functions.values()];
  }

  /** Deploys every function file in the directory. A file that fails is reported, the rest still load. */
  async loadAll(): Promise<{ deployed: string[]; failed: { file: string; error: StreamfnError }[] }> {
    let entries: string[];
    try {
      entries = await readdir(this.dir);
    } catch (err) {
      throw new StreamfnError("FUNCTION_LOAD_FAILED", `cannot read functions directory ${this.dir}: ${(err as Error).message}`);
    }
    const deployed: string[] = [];
    const failed: { file: string; error: StreamfnError }[] = [];
    for (const entry of entries.sort()) {
      if (!functionNameOf(entry)) continue;
      const file = join(this.dir, entry);
      try {
        deployed.push((await this.deploy(file)).name);
      } catch (err) {
        failed.push({ file, error: asStreamfnError(err) });
      }
    }
    return { deployed, failed };
  }

  /** Bundles and deploys one file. New streams go to the new version; running ones finish on theirs. */
  deploy(file: string): Promise<DeployedFunction> {
    const name = functionNameOf(file);
    if (!name) return Promise.reject(new StreamfnError("INVALID_FUNCTION", `${file} is not a function file name`));
    const previous = this.#deploying.get(name) ?? Promise.resolve();
    const next = previous.catch(() => {}).then(() => this.#deploy(name, file));
    this.#deploying.set(name, next);
    return next;
  }

  /** Takes a function away: no new streams; running ones finish. */
  remove(name: string): boolean {
    const fn = this.#functions.get(name);
    if (!fn) return false;
    this.#functions.delete(name);
    this.#retire(fn, fn.current);
    return true;
  }

  async close(): Promise<void> {
    const pools: FunctionPool[] = [];
    for (const fn of this.#functions.values()) pools.push(fn.current, ...fn.retiring);
    this.#functions.clear();
    await Promise.all(pools.map((p) => p.close()));
  }

  async #deploy(name: string, file: string): Promise<DeployedFunction> {
    const bundle = await bundleFunction(file, name, this.cacheDir);
    const existing = this.#functions.get(name);
    if (existing && existing.current.version === bundle.version) return existing;
    const own = await probeFunction(bundle.path, name);
    const options = resolveOptions(this.#options.defaults, own, this.#options.overrides?.[name]);
    const pool = new FunctionPool(name, bundle.version, bundle.path, options, this.#options.observer);
    await pool.warm();
    const fn: DeployedFunction = existing ?? { name, file, current: pool, retiring: new Set() };
    if (existing) {
      const old = existing.current;
      existing.current = pool;
      this.#retire(existing, old);
    }
    this.#functions.set(name, fn);
    return fn;
  }

  #retire(fn: DeployedFunction, pool: FunctionPool): void {
    fn.retiring.add(pool);
    pool.onDrained = () => fn.retiring.delete(pool);
    pool.drain();
  }
}

function asStreamfnError(err: unknown): StreamfnError {
  if (err instanceof StreamfnError) return err;
  return new StreamfnError("FUNCTION_LOAD_FAILED", err instanceof Error ? err.message : String(err), { cause: err });
}
