import { mkdir, readdir, rmdir, stat, unlink, writeFile } from "node:fs/promises";
import { basename, extname, join, resolve } from "node:path";
import { StreamfnError } from "../api/errors.js";
import { resolveOptions, validateOptions } from "../api/options.js";
import type { StreamFunctionOptions } from "../api/types.js";
import { FunctionPool } from "../instances/pool.js";
import type { SpareThreads } from "../instances/spare-threads.js";
import type { PoolObserver } from "../instances/pool.js";
import type { FunctionCatalog } from "../router/router.js";
import { bundleFunction } from "./bundler.js";
import type { Bundle } from "./bundler.js";
import { probeFunction } from "./probe.js";
import { DirectoryWatcher } from "./watcher.js";

export interface RegistryOptions {
  dir: string;
  /**
   * The server's folder next to the functions. Default `<dir>/.streamfn`. It gets a
   * `.gitignore` of `*` so it is never committed; bundles go in its `bundles/`.
   */
  cacheDir?: string;
  /** Applied under every function's own options. */
  defaults?: StreamFunctionOptions;
  /** Per function name, applied over the function's own options. */
  overrides?: Record<string, StreamFunctionOptions>;
  observer?: PoolObserver;
  /** Booted threads that instances start on, to take the thread boot out of cold starts. */
  spares?: SpareThreads;
}

export interface DeployedFunction {
  name: string;
  file: string;
  /** The version new streams get; undefined once the function's file is gone (its versions still drain). */
  current: FunctionPool | undefined;
  /** Older versions still finishing their streams. */
  retiring: Set<FunctionPool>;
}

/** What a watched directory did to the served functions. */
export type RegistryChange =
  | { kind: "deployed"; name: string; version: string; previous: string | undefined }
  | { kind: "removed"; name: string; version: string }
  | { kind: "failed"; name: string; file: string; error: StreamfnError; serving: string | undefined }
  /** The directory can no longer be watched (it was deleted or moved); functions keep serving. */
  | { kind: "watch-stopped"; error: StreamfnError };

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
  /** `<cacheDir>/bundles`: where this registry writes its bundles (and removes them on close). */
  readonly bundlesDir: string;
  /** Every bundle this registry wrote that may still be on disk. */
  readonly #written = new Set<string>();
  #cacheReady: Promise<void> | undefined;
  /** Bundles being deployed right now: not to be deleted by a version that drains meanwhile. */
  readonly #loading = new Set<string>();
  readonly #functions = new Map<string, DeployedFunction>();
  readonly #options: RegistryOptions;
  /** One deploy or removal at a time per function, in order. */
  readonly #deploying = new Map<string, Promise<unknown>>();
  #watcher: DirectoryWatcher | undefined;
  #closed = false;

  constructor(options: RegistryOptions) {
    this.#options = options;
    this.dir = resolve(options.dir);
    this.cacheDir = options.cacheDir ? resolve(options.cacheDir) : join(this.dir, ".streamfn");
    this.bundlesDir = join(this.cacheDir, "bundles");
    for (const [name, o] of Object.entries(options.overrides ?? {})) validateOptions(o, `overrides for ${name}`);
    validateOptions(options.defaults, "server defaults");
  }

  current(name: string): FunctionPool | undefined {
    return this.#functions.get(name)?.current;
  }

  /** Every function with a version deployed, including removed ones whose versions still drain. */
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
    return this.#serial(name, () => this.#deploy(name, file));
  }

  /** Takes a function away: no new streams; running ones finish on their version. */
  remove(name: string): boolean {
    const fn = this.#functions.get(name);
    if (!fn?.current) return false;
    const pool = fn.current;
    fn.current = undefined;
    this.#retire(fn, pool);
    return true;
  }

  /**
   * Follows the directory: a function file that is added or changed is deployed (a file that
   * fails to load leaves the version before it serving), a deleted one is removed. Each burst
   * of writes to a file is handled once, ~100 ms after it settles.
   */
  watch(onChange: (change: RegistryChange) => void): void {
    if (this.#watcher || this.#closed) return;
    try {
      this.#watcher = this.#startWatcher(onChange);
    } catch (err) {
      throw new StreamfnError("FUNCTION_LOAD_FAILED", `cannot watch functions directory ${this.dir}: ${(err as Error).message}`, { cause: err });
    }
  }

  #startWatcher(onChange: (change: RegistryChange) => void): DirectoryWatcher {
    return new DirectoryWatcher(this.dir, {
      accept: (fileName) => functionNameOf(fileName) !== undefined,
      changed: (file) => {
        const name = functionNameOf(file)!;
        void this.#serial(name, () => this.#sync(name, file, onChange));
      },
      error: (err) => {
        this.#watcher?.close();
        this.#watcher = undefined;
        onChange({
          kind: "watch-stopped",
          error: new StreamfnError("FUNCTION_LOAD_FAILED", `watching ${this.dir} stopped: ${err.message}`, { cause: err }),
        });
      },
    });
  }

  get watching(): boolean {
    return this.#watcher !== undefined;
  }

  /** Stops watching, lets deploys in progress settle, then stops every instance. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#watcher?.close();
    await Promise.allSettled([...this.#deploying.values()]);
    const pools: FunctionPool[] = [];
    for (const fn of this.#functions.values()) {
      if (fn.current) pools.push(fn.current);
      pools.push(...fn.retiring);
    }
    this.#functions.clear();
    await Promise.all(pools.map((p) => p.close()));
    await this.#removeBundles();
  }

  /**
   * Deletes the bundles this registry wrote. The folder goes too if that leaves it empty
   * (another server on the same directory keeps its own); the rest of the cache dir stays.
   */
  async #removeBundles(): Promise<void> {
    await Promise.all([...this.#written].map((path) => unlink(path).catch(() => {})));
    this.#written.clear();
    await rmdir(this.bundlesDir).catch(() => {});
  }

  /** Creates the cache dir with a `.gitignore` of `*`, once; an existing `.gitignore` is left alone. */
  #prepareCache(): Promise<void> {
    this.#cacheReady ??= (async () => {
      await mkdir(this.cacheDir, { recursive: true });
      try {
        await writeFile(join(this.cacheDir, ".gitignore"), "# Written by streamfn: what it keeps next to the functions is never committed.\n*\n", { flag: "wx" });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
    })();
    // A failure (a read-only directory) is reported by this deploy and retried by the next.
    this.#cacheReady.catch(() => (this.#cacheReady = undefined));
    return this.#cacheReady;
  }

  #serial<T>(name: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#deploying.get(name) ?? Promise.resolve();
    const next = previous.catch(() => {}).then(task);
    this.#deploying.set(name, next);
    return next;
  }

  /** Makes the served function match its file on disk: deploy, or remove when the file is gone. Never rejects. */
  async #sync(name: string, file: string, onChange: (change: RegistryChange) => void): Promise<void> {
    if (this.#closed) return;
    const previous = this.#functions.get(name)?.current?.version;
    try {
      if (!(await isFile(file))) {
        if (previous !== undefined && this.remove(name)) onChange({ kind: "removed", name, version: previous });
        return;
      }
      const fn = await this.#deploy(name, file);
      const version = fn.current!.version;
      if (version !== previous) onChange({ kind: "deployed", name, version, previous });
    } catch (err) {
      if (this.#closed) return;
      onChange({ kind: "failed", name, file, error: asStreamfnError(err), serving: this.#functions.get(name)?.current?.version });
    }
  }

  async #deploy(name: string, file: string): Promise<DeployedFunction> {
    if (this.#closed) throw new StreamfnError("SHUTTING_DOWN", `not deploying ${name}: the registry is closed`);
    await this.#prepareCache().catch((err: unknown) => {
      throw new StreamfnError("FUNCTION_LOAD_FAILED", `${name}: cannot create ${this.cacheDir}: ${(err as Error).message}`, { cause: err });
    });
    const bundle = await bundleFunction(file, name, this.bundlesDir);
    this.#written.add(bundle.path);
    this.#loading.add(bundle.path);
    try {
      return await this.#activate(name, file, bundle);
    } catch (err) {
      this.#loading.delete(bundle.path);
      // A version that failed to load leaves no bundle behind.
      if (!this.#bundleInUse(bundle.path)) {
        this.#written.delete(bundle.path);
        await unlink(bundle.path).catch(() => {});
      }
      throw err;
    } finally {
      this.#loading.delete(bundle.path);
    }
  }

  async #activate(name: string, file: string, bundle: Bundle): Promise<DeployedFunction> {
    const existing = this.#functions.get(name);
    if (existing?.current?.version === bundle.version) return existing;
    // Code the operator marked for process isolation is not loaded into a thread even to be checked.
    const probeKind = this.#options.overrides?.[name]?.sandbox ?? this.#options.defaults?.sandbox ?? "thread";
    const own = await probeFunction(bundle.path, name, probeKind);
    const options = resolveOptions(this.#options.defaults, own, this.#options.overrides?.[name]);
    const pool = new FunctionPool(name, bundle.version, bundle.path, options, this.#options.observer, this.#options.spares);
    try {
      await pool.warm();
    } catch (err) {
      await pool.close();
      throw err;
    }
    if (this.#closed) {
      await pool.close();
      throw new StreamfnError("SHUTTING_DOWN", `not deploying ${name}: the registry closed while it loaded`);
    }
    // Looked up again: the function may have been removed while this version loaded.
    const fn: DeployedFunction = this.#functions.get(name) ?? { name, file, current: undefined, retiring: new Set() };
    const old = fn.current;
    fn.current = pool;
    fn.file = file;
    this.#functions.set(name, fn);
    if (old) this.#retire(fn, old);
    return fn;
  }

  #bundleInUse(path: string): boolean {
    if (this.#loading.has(path)) return true;
    for (const fn of this.#functions.values()) {
      if (fn.current?.bundlePath === path) return true;
      for (const p of fn.retiring) if (p.bundlePath === path) return true;
    }
    return false;
  }

  #retire(fn: DeployedFunction, pool: FunctionPool): void {
    fn.retiring.add(pool);
    pool.onDrained = () => {
      fn.retiring.delete(pool);
      // A removed function is forgotten once its last version has drained.
      if (!fn.current && fn.retiring.size === 0 && this.#functions.get(fn.name) === fn) this.#functions.delete(fn.name);
      // Its bundle goes too, unless a live pool runs the same content (an edit that was undone).
      if (!this.#bundleInUse(pool.bundlePath)) {
        this.#written.delete(pool.bundlePath);
        void unlink(pool.bundlePath).catch(() => {});
      }
    };
    pool.drain();
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

function asStreamfnError(err: unknown): StreamfnError {
  if (err instanceof StreamfnError) return err;
  return new StreamfnError("FUNCTION_LOAD_FAILED", err instanceof Error ? err.message : String(err), { cause: err });
}
