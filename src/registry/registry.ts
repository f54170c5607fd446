import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { mkdir, readFile, readdir, rename, rmdir, stat, unlink, writeFile } from "node:fs/promises";
import { basename, dirname, extname, join, resolve, sep } from "node:path";
import { StreamfnError } from "../api/errors.js";
import { resolveOptions, validateOptions } from "../api/options.js";
import type { SandboxKind, StreamFunctionOptions } from "../api/types.js";
import type { StreamSource } from "../api/sources.js";
import { FunctionPool } from "../instances/pool.js";
import type { SpareThreads } from "../instances/spare-threads.js";
import type { PoolObserver } from "../instances/pool.js";
import type { FunctionCatalog } from "../router/router.js";
import { BuildCache } from "./build-cache.js";
import type { CachedBuild } from "./build-cache.js";
import { buildFunction, bundleFunction, unresolvedImports, writeBundle } from "./bundler.js";
import type { Build, Bundle, SourceInput } from "./bundler.js";
import { InputWatcher } from "./input-watcher.js";
import { checkBatch } from "./check-batch.js";
import { probeFunction, validateCheck } from "./probe.js";
import type { FunctionCheck } from "./probe.js";

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
  /** Whether a function may run on the inline tier (`sandbox: "inline"`). Default true. */
  allowInline?: boolean;
  observer?: PoolObserver;
  /** Booted threads that instances start on, to take the thread boot out of cold starts. */
  spares?: SpareThreads;
  /**
   * Reuse, at start-up, the bundles and load checks an earlier run made of function files that
   * did not change (see BuildCache; kept in `<cacheDir>/build-cache`). Default true.
   */
  buildCache?: boolean;
}

/** Where a function's code comes from: a file in the served directory, or an upload (control API). */
export type FunctionSource = "file" | "uploaded";

/** The language of an uploaded function: TypeScript source, or a JavaScript ES module (a bundle, say). */
export type UploadKind = "ts" | "js";

export interface DeployedFunction {
  name: string;
  /** The file its current version was built from (for an upload: its stored copy). */
  file: string;
  source: FunctionSource;
  /** The version new streams get; undefined once the function's file is gone (its versions still drain). */
  current: FunctionPool | undefined;
  /** Older versions still finishing their streams. */
  retiring: Set<FunctionPool>;
  /** The current version's own `sources` (broker topics bound to it); the server's configuration may replace them. */
  sources: readonly StreamSource[];
}

/** What a watched directory did to the served functions. */
export type RegistryChange =
  | { kind: "deployed"; name: string; version: string; previous: string | undefined }
  | { kind: "removed"; name: string; version: string }
  | { kind: "failed"; name: string; file: string; error: StreamfnError; serving: string | undefined }
  /** A top-level file that is not served: it has no default export (see `FileRole`), or another function imports it. */
  | { kind: "skipped"; name: string; file: string; message: string }
  /** The directory can no longer be watched (it was deleted or moved); functions keep serving. */
  | { kind: "watch-stopped"; error: StreamfnError };

/** What the registry last learnt about one top-level file. */
interface SourceFile {
  name: string;
  file: string;
  /** Files its last successful bundle was made from (the file itself included), kept while it fails. */
  inputs: Set<string>;
  /** Whether its last bundle attempt failed (it is retried when a new file appears). */
  failing: boolean;
  /** Imports its last build could not find: their folders are watched for them to appear. */
  missing: string[];
  /** Whether it was last treated as a helper (imported by another top-level file). */
  helper: boolean;
}

export interface LoadResult {
  deployed: string[];
  failed: { file: string; error: StreamfnError }[];
  /** Top-level files with no default export that no other file imports: not served, worth one notice. */
  skipped: { file: string; name: string; message: string }[];
  /** Deployed functions whose bundle came from the build cache (not bundled again). */
  cached: string[];
}

type FileRole = { kind: "function" } | { kind: "helper" | "not-function"; message: string };

const kFunctionExtensions = [".ts", ".mts", ".js", ".mjs"];
/**
 * Files bundled, and versions checked, at once during a start-up: enough to keep both cores
 * busy while each check waits for its thread to boot, few enough that a directory of hundreds
 * of functions does not boot hundreds of threads at once.
 */
const kStartParallelism = Math.max(4, Math.min(8, 2 * availableParallelism()));
/** Uploaded functions are stored as `<name>.ts` or `<name>.mjs` under `<dir>/.streamfn/deployed`. */
const kUploadExtension: Record<UploadKind, string> = { ts: ".ts", js: ".mjs" };


export { assertFunctionName, functionNameOf, isFunctionName } from "./function-names.js";
import { assertFunctionName, functionNameOf } from "./function-names.js";

/**
 * The functions of one directory, one file each. Bundles and checks each (in a throwaway
 * sandbox: user code never runs on the router's thread), keeps a pool per version, and
 * moves new streams to a new version while the old one drains.
 */
export class Registry implements FunctionCatalog {
  readonly dir: string;
  readonly cacheDir: string;
  /** Where uploaded functions are kept, so they are served again after a restart. */
  readonly uploadDir: string;
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
  #watcher: InputWatcher | undefined;
  readonly #sources = new Map<string, SourceFile>();
  #onPath: ((path: string) => void) | undefined;
  /** Per function, how many watched rebuilds began: a start-up build older than one is stale. */
  readonly #rebuilds = new Map<string, number>();
  #closed = false;
  readonly #cache: BuildCache | undefined;
  /** Load checks an earlier run made, per function, for the version the cache gave it at start. */
  readonly #cachedChecks = new Map<string, { version: string; checks: CachedBuild["checks"] }>();
  /** During a start-up: the checks of several functions made together in one thread (see checkBatch). */
  readonly #batchChecks = new Map<string, { version: string; options: Promise<unknown> }>();

  constructor(options: RegistryOptions) {
    this.#options = options;
    this.dir = resolve(options.dir);
    this.cacheDir = options.cacheDir ? resolve(options.cacheDir) : join(this.dir, ".streamfn");
    this.uploadDir = join(this.dir, ".streamfn", "deployed");
    this.bundlesDir = join(this.cacheDir, "bundles");
    this.#cache = options.buildCache === false ? undefined : new BuildCache(this.cacheDir);
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

  /**
   * Deploys every function file in the directory, then the uploaded functions kept from
   * earlier runs (an upload replaces a file of the same name, as it did when it was made).
   * A file that fails is reported, the rest still load. Every file is bundled first, so files
   * that others import are known as helpers before any is judged (see `FileRole`).
   */
  async loadAll(): Promise<LoadResult> {
    let entries: string[];
    try {
      entries = await readdir(this.dir);
    } catch (err) {
      throw new StreamfnError("FUNCTION_LOAD_FAILED", `cannot read functions directory ${this.dir}: ${(err as Error).message}`);
    }
    const builds = new Map<string, { file: string; build?: Build; error?: StreamfnError }>();
    const seen = new Map<string, number>();
    const files: { name: string; file: string }[] = [];
    for (const entry of entries.sort()) {
      const name = functionNameOf(entry);
      if (!name || seen.has(name)) continue;
      seen.set(name, this.#rebuilds.get(name) ?? 0);
      files.push({ name, file: join(this.dir, entry) });
    }
    // Every file is bundled (or found in the cache) before any is judged; results keep the sorted order.
    const built = await inBatches(files, kStartParallelism, async ({ name, file }) => {
      try {
        return { file, build: await this.#startBuild(name, file) };
      } catch (err) {
        return { file, error: err };
      }
    });
    this.#cache?.endLookups();
    void this.#cache?.prune(new Set(files.map((f) => f.name)));
    for (const [i, { name }] of files.entries()) {
      const { file, build, error } = built[i]!;
      if (build) this.#remember(name, file, build);
      else this.#remember(name, file, undefined, error);
      builds.set(name, build ? { file, build } : { file, error: asStreamfnError(error) });
    }
    const result: LoadResult = { deployed: [], failed: [], skipped: [], cached: [] };
    const deploys: { name: string; file: string; build: Build }[] = [];
    for (const [name, { file, build, error }] of builds) {
      if (!build) {
        result.failed.push({ file, error: error! });
        continue;
      }
      const role = this.#roleOf(name, file, build);
      const src = this.#sources.get(name);
      if (src) src.helper = role.kind === "helper";
      if (role.kind === "helper") continue;
      if (role.kind === "not-function") {
        result.skipped.push({ file, name, message: role.message });
        continue;
      }
      deploys.push({ name, file, build });
    }
    await this.#startBatchCheck(deploys);
    // Each version's check waits on a thread booting: several at once keep the cores busy.
    const outcomes = await inBatches(deploys, kStartParallelism, async ({ name, file, build }) => {
      try {
        const fn = await this.#serial(name, async () => {
          // The watcher rebuilt it from a newer edit meanwhile: that build is the one to keep.
          if ((this.#rebuilds.get(name) ?? 0) !== seen.get(name)) return this.#functions.get(name);
          return this.#deployBuild(name, file, build);
        });
        return { fn };
      } catch (err) {
        return { error: asStreamfnError(err) };
      }
    });
    for (const [i, { file }] of deploys.entries()) {
      const { fn, error } = outcomes[i]!;
      if (error) result.failed.push({ file, error });
      else if (fn?.current) {
        result.deployed.push(fn.name);
        if (this.#cachedChecks.get(fn.name)?.version === fn.current.version) result.cached.push(fn.name);
      }
    }
    this.#cachedChecks.clear();
    this.#batchChecks.clear();
    this.#keepOrder(deploys.map((d) => d.name));
    for (const entry of await uploadedEntries(this.uploadDir)) {
      const name = functionNameOf(entry)!;
      const file = join(this.uploadDir, entry);
      try {
        const contents = await readFile(file, "utf8");
        const kind: UploadKind = /\.m?ts$/.test(entry) ? "ts" : "js";
        await this.#serial(name, () => this.#deployUpload(name, contents, kind, false));
        if (!result.deployed.includes(name)) result.deployed.push(name);
      } catch (err) {
        result.failed.push({ file, error: asStreamfnError(err) });
      }
    }
    this.#refreshWatch();
    return result;
  }

  /**
   * Deploys uploaded code as the next version of `name`, exactly as a changed file is: bundled,
   * checked in a throwaway sandbox, then new streams go to it while running ones finish on
   * theirs. It is stored under `uploadDir` (only once it passed) so a restart serves it again.
   * Code that fails leaves the version before it serving, and its stored copy untouched.
   */
  upload(name: string, contents: string, kind: UploadKind): Promise<{ version: string; previous: string | undefined }> {
    try {
      assertFunctionName(name);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#serial(name, () => this.#deployUpload(name, contents, kind, true));
  }

  /**
   * Retires a function: no new streams, running ones finish on their version. Its uploaded copy
   * is deleted so a restart does not bring it back; a file of that name in the directory stays
   * (it is served again at the next restart, or when it changes while watched).
   */
  retire(name: string): Promise<{ version: string | undefined; removedUpload: boolean; directoryFile: string | undefined }> {
    try {
      assertFunctionName(name);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#serial(name, async () => {
      let removedUpload = false;
      for (const ext of Object.values(kUploadExtension)) {
        try {
          await unlink(join(this.uploadDir, name + ext));
          removedUpload = true;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
        }
      }
      const version = this.current(name)?.version;
      if (version === undefined && !removedUpload) {
        throw new StreamfnError("FUNCTION_NOT_FOUND", `no function named "${name}"`);
      }
      this.remove(name);
      let directoryFile: string | undefined;
      for (const ext of kFunctionExtensions) {
        if (await isFile(join(this.dir, name + ext))) directoryFile ??= join(this.dir, name + ext);
      }
      return { version, removedUpload, directoryFile };
    });
  }

  /**
   * Starts one thread checking every start-up function that needs a check in a thread (none
   * cached): their bundles are written first, where the deploys will find them.
   */
  async #startBatchCheck(deploys: { name: string; build: Build }[]): Promise<void> {
    const todo = deploys.filter(({ name, build }) => {
      if (this.#probeKind(name) !== "thread") return false;
      const cached = this.#cachedChecks.get(name);
      return !(cached?.version === build.version && cached.checks.thread);
    });
    if (todo.length < 2) return;
    let bundles: Bundle[];
    try {
      await this.#prepareCache();
      bundles = await Promise.all(todo.map(({ name, build }) => writeBundle(build, name, this.bundlesDir)));
    } catch {
      return; // each deploy then reports the problem on its own
    }
    for (const b of bundles) this.#written.add(b.path);
    const results = checkBatch(todo.map(({ name }, i) => ({ name, path: bundles[i]!.path })));
    for (const [i, { name, build }] of todo.entries()) {
      const options = results.get(name)!;
      options.catch(() => {}); // read by the deploy, unless a newer edit replaced the version
      this.#batchChecks.set(name, { version: build.version, options });
    }
  }

  /** The kind of sandbox a function is checked (and run) in, as the operator set it. */
  #probeKind(name: string): SandboxKind {
    const kind = this.#options.overrides?.[name]?.sandbox ?? this.#options.defaults?.sandbox ?? "thread";
    // A server that refuses the inline tier does not run the code on its thread to check it either.
    return kind === "inline" && this.#options.allowInline === false ? "thread" : kind;
  }

  /** Lists `names` first, in that order (deploys that ran at once finish in any order). */
  #keepOrder(names: string[]): void {
    const first = names.flatMap((n) => {
      const fn = this.#functions.get(n);
      return fn ? [[n, fn] as const] : [];
    });
    const rest = [...this.#functions].filter(([n]) => !names.includes(n));
    this.#functions.clear();
    for (const [n, fn] of [...first, ...rest]) this.#functions.set(n, fn);
  }

  /**
   * A start-up's build of one file: the cached one when nothing it was made from changed
   * (with the load checks made of it), else a fresh one, recorded for the next start.
   */
  async #startBuild(name: string, file: string): Promise<Build> {
    const cached = await this.#cache?.lookup(name, file);
    if (cached) {
      this.#cachedChecks.set(name, { version: cached.build.version, checks: cached.checks });
      return cached.build;
    }
    return this.#freshBuild(name, file);
  }

  /** Bundles a file with esbuild and records the bundle for the next start (in the background). */
  async #freshBuild(name: string, file: string): Promise<Build> {
    const startedAt = Date.now();
    const build = await buildFunction(file, name);
    const cache = this.#cache;
    if (cache) {
      // After the cache dir exists with its .gitignore, so the record is never committed.
      void this.#prepareCache().then(
        () => cache.store(name, file, build, startedAt),
        () => {},
      );
    }
    return build;
  }

  /** Bundles and deploys one file. New streams go to the new version; running ones finish on theirs. */
  deploy(file: string): Promise<DeployedFunction> {
    const name = functionNameOf(file);
    if (!name) return Promise.reject(new StreamfnError("INVALID_FUNCTION", `${file} is not a function file name`));
    return this.#serial(name, async () => this.#deployBuild(name, file, await this.#freshBuild(name, file)));
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
   * Follows the directory and every file a function imports: a function whose file or any of
   * its imports is added or changed is rebuilt and deployed if its bundle changed (a file that
   * fails to load leaves the version before it serving); a deleted function file is removed.
   * Each burst of writes to a file is handled once, ~100 ms after it settles.
   */
  watch(onChange: (change: RegistryChange) => void, onPath?: (path: string) => void): void {
    if (this.#watcher || this.#closed) return;
    this.#onPath = onPath;
    try {
      this.#watcher = this.#startWatcher(onChange);
    } catch (err) {
      throw new StreamfnError("FUNCTION_LOAD_FAILED", `cannot watch functions directory ${this.dir}: ${(err as Error).message}`, { cause: err });
    }
  }

  #startWatcher(onChange: (change: RegistryChange) => void): InputWatcher {
    return new InputWatcher(this.dir, {
      ignore: (path) => path === this.cacheDir || path.startsWith(this.cacheDir + sep) || path.split(sep).includes("node_modules"),
      changed: (path) => this.#changed(path, onChange),
      rootError: (err) => {
        this.#watcher?.close();
        this.#watcher = undefined;
        onChange({
          kind: "watch-stopped",
          error: new StreamfnError("FUNCTION_LOAD_FAILED", `watching ${this.dir} stopped: ${err.message}`, { cause: err }),
        });
      },
    });
  }

  /** A watched path settled: rebuild the top-level file it is, and every function that imports it. */
  #changed(path: string, onChange: (change: RegistryChange) => void): void {
    if (this.#closed) return;
    // Only source and config files can change what a type check says; editors' and sed's
    // temporary files would only make it run twice per save.
    if (/\.[cm]?[jt]sx?$|\.json$/.test(path)) this.#onPath?.(path);
    const targets = new Map<string, string>();
    const own = dirname(path) === this.dir ? functionNameOf(path) : undefined;
    if (own) targets.set(own, path);
    let known = own !== undefined;
    for (const src of this.#sources.values()) {
      if (!src.inputs.has(path)) continue;
      known = true;
      if (!targets.has(src.name)) targets.set(src.name, src.file);
    }
    for (const [name, file] of targets) void this.#serial(name, () => this.#sync(name, file, onChange, false));
    // A file nothing used before may be the one a failing function was missing: retry those
    // quietly (only a success is reported; the failure was reported already).
    if (!known) {
      for (const src of this.#sources.values()) {
        if (src.failing && !targets.has(src.name)) void this.#serial(src.name, () => this.#sync(src.name, src.file, onChange, true));
      }
    }
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
    await this.#cache?.flush();
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

  /**
   * Makes the served function match its file on disk: deploy, skip it as a helper or a file
   * with no default export, or remove it when the file is gone. Never rejects. `quiet`: a
   * retry whose failure was reported before.
   */
  async #sync(name: string, file: string, onChange: (change: RegistryChange) => void, quiet: boolean): Promise<void> {
    if (this.#closed) return;
    this.#rebuilds.set(name, (this.#rebuilds.get(name) ?? 0) + 1);
    const previous = this.#functions.get(name)?.current?.version;
    try {
      if (!(await isFile(file))) {
        if (this.#sources.get(name)?.file === file) this.#sources.delete(name);
        // An upload of the same name serves in place of the file: the file going does not take it away.
        if (previous !== undefined && this.#functions.get(name)?.file !== file) {
          this.#afterChange(onChange);
          return;
        }
        if (previous !== undefined && this.remove(name)) onChange({ kind: "removed", name, version: previous });
        this.#afterChange(onChange);
        return;
      }
      let build: Build;
      try {
        build = await this.#freshBuild(name, file);
      } catch (err) {
        this.#remember(name, file, undefined, err);
        this.#refreshWatch();
        throw err;
      }
      const wasFailing = this.#sources.get(name)?.failing ?? false;
      const role = this.#remember(name, file, build);
      this.#refreshWatch();
      if (role.kind !== "function") {
        if (previous !== undefined) {
          if (role.kind === "helper") {
            this.remove(name);
            onChange({ kind: "skipped", name, file, message: role.message });
          } else {
            onChange({ kind: "failed", name, file, error: new StreamfnError("INVALID_FUNCTION", `${name}: ${role.message.replace(/; not served$/, "")}`), serving: previous });
          }
        } else if (role.kind === "not-function" && (!quiet || wasFailing)) {
          onChange({ kind: "skipped", name, file, message: role.message });
        }
        this.#afterChange(onChange);
        return;
      }
      const fn = await this.#deployBuild(name, file, build);
      const version = fn.current!.version;
      if (version !== previous) onChange({ kind: "deployed", name, version, previous });
      this.#afterChange(onChange);
    } catch (err) {
      if (this.#closed || quiet) return;
      onChange({ kind: "failed", name, file, error: asStreamfnError(err), serving: this.#functions.get(name)?.current?.version });
    }
  }

  /** Records what one build of a top-level file says about it, and returns its role. */
  #remember(name: string, file: string, build: Build | undefined, error?: unknown): FileRole {
    const src = this.#sources.get(name);
    const inputs = build ? new Set(build.inputs) : new Set(src?.file === file ? src.inputs : []);
    inputs.add(file);
    const missing = build ? [] : unresolvedImports(error);
    const next: SourceFile = { name, file, inputs, failing: build === undefined, missing, helper: false };
    this.#sources.set(name, next);
    if (!build) return { kind: "function" };
    const role = this.#roleOf(name, file, build);
    next.helper = role.kind === "helper";
    return role;
  }

  /**
   * The helper rule: a top-level file that another top-level file imports is a helper (not
   * served, not reported); one with no default export that nothing imports is not a stream
   * function (not served, one notice); every other file is a function, and fails loudly.
   */
  #roleOf(name: string, file: string, build: Build): FileRole {
    for (const other of this.#sources.values()) {
      if (other.name !== name && other.inputs.has(file)) {
        return { kind: "helper", message: `${basename(file)} is imported by ${basename(other.file)}: a helper, not served` };
      }
    }
    if (!build.hasDefaultExport) {
      return { kind: "not-function", message: `${basename(file)} is not a stream function (no default export made with defineStreamFunction); not served` };
    }
    return { kind: "function" };
  }

  /** After one file's change, others may have become helpers or stopped being ones: look at those again. */
  #afterChange(onChange: (change: RegistryChange) => void): void {
    if (this.#closed) return;
    for (const src of this.#sources.values()) {
      if (src.failing) continue;
      let imported = false;
      for (const other of this.#sources.values()) {
        if (other !== src && other.inputs.has(src.file)) imported = true;
      }
      if (imported !== src.helper) {
        // Marked now, so a second change before the recheck runs does not schedule it twice.
        src.helper = imported;
        void this.#serial(src.name, () => this.#sync(src.name, src.file, onChange, imported));
      }
    }
  }

  /** Watches every directory holding a file some function is built from. */
  #refreshWatch(): void {
    if (!this.#watcher) return;
    const dirs = new Set<string>();
    for (const src of this.#sources.values()) {
      for (const input of src.inputs) dirs.add(dirname(input));
      // The nearest folder that exists is watched: the missing file, or its folder, appears there.
      for (const m of src.missing) dirs.add(nearestExisting(dirname(m), this.dir));
    }
    this.#watcher.watchDirs(dirs);
  }

  /** The top-level files last seen (functions, helpers and others), for tools such as a type checker. */
  get sourceFiles(): string[] {
    return [...this.#sources.values()].map((s) => s.file);
  }

  /** The directories watched right now (for status and tests); empty when not watching. */
  get watchedDirs(): string[] {
    return this.#watcher?.dirs ?? [];
  }

  async #deployBuild(name: string, file: string, build: Build): Promise<DeployedFunction> {
    if (this.#closed) throw new StreamfnError("SHUTTING_DOWN", `not deploying ${name}: the registry is closed`);
    const existing = this.#functions.get(name);
    if (existing?.current?.version === build.version) return existing;
    const bundle = await this.#writeBuild(name, () => writeBundle(build, name, this.bundlesDir));
    try {
      return await this.#activate(name, file, "file", bundle);
    } catch (err) {
      await this.#dropFailedBundle(bundle.path);
      throw err;
    } finally {
      this.#loading.delete(bundle.path);
    }
  }

  /** Writes a bundle into the prepared cache and marks it loading (the caller's `finally` unmarks it). */
  async #writeBuild(name: string, write: () => Promise<Bundle>): Promise<Bundle> {
    await this.#prepareCache().catch((err: unknown) => {
      throw new StreamfnError("FUNCTION_LOAD_FAILED", `${name}: cannot create ${this.cacheDir}: ${(err as Error).message}`, { cause: err });
    });
    const bundle = await write();
    this.#written.add(bundle.path);
    this.#loading.add(bundle.path);
    return bundle;
  }

  /** A version that failed to load leaves no bundle behind. */
  async #dropFailedBundle(path: string): Promise<void> {
    this.#loading.delete(path);
    if (this.#bundleInUse(path)) return;
    this.#written.delete(path);
    await unlink(path).catch(() => {});
  }

  async #deployUpload(
    name: string,
    contents: string,
    kind: UploadKind,
    store: boolean,
  ): Promise<{ version: string; previous: string | undefined }> {
    if (this.#closed) throw new StreamfnError("SHUTTING_DOWN", `not deploying ${name}: the registry is closed`);
    const stored = join(this.uploadDir, name + kUploadExtension[kind]);
    // Bundled from memory under the stored copy's name: the same upload makes the same version,
    // before and after a restart, and a failing one never touches the copy that serves.
    const input: SourceInput = { contents, sourcefile: stored, resolveDir: this.uploadDir, loader: kind };
    const previous = this.current(name)?.version;
    const bundle = await this.#writeBuild(name, () => bundleFunction(input, name, this.bundlesDir));
    try {
      const persist = store ? () => this.#storeUpload(name, kind, contents) : undefined;
      const fn = await this.#activate(name, stored, "uploaded", bundle, persist);
      return { version: fn.current!.version, previous };
    } catch (err) {
      await this.#dropFailedBundle(bundle.path);
      throw err;
    } finally {
      this.#loading.delete(bundle.path);
    }
  }

  /** Writes the stored copy whole (write, then rename) and drops one of the other kind. */
  async #storeUpload(name: string, kind: UploadKind, contents: string): Promise<void> {
    await mkdir(this.uploadDir, { recursive: true });
    const path = join(this.uploadDir, name + kUploadExtension[kind]);
    const partial = `${path}.${process.pid}.partial`;
    await writeFile(partial, contents);
    await rename(partial, path);
    for (const [other, ext] of Object.entries(kUploadExtension)) {
      if (other !== kind) await unlink(join(this.uploadDir, name + ext)).catch(() => {});
    }
  }

  /**
   * Serves `bundle` as the current version. `beforeSwitch` runs once the version has loaded
   * and before streams go to it; if it throws, the new version is dropped.
   */
  async #activate(
    name: string,
    file: string,
    source: FunctionSource,
    bundle: Bundle,
    beforeSwitch?: () => Promise<void>,
  ): Promise<DeployedFunction> {
    const existing = this.#functions.get(name);
    if (existing?.current?.version === bundle.version) {
      await beforeSwitch?.();
      return existing;
    }
    // Code the operator marked for process isolation is not loaded into a thread even to be checked.
    const probeKind = this.#probeKind(name);
    const { options: own, sources } = await this.#check(name, source, bundle, probeKind);
    const options = resolveOptions(this.#options.defaults, own, this.#options.overrides?.[name]);
    if (options.sandbox === "inline" && this.#options.allowInline === false) {
      throw new StreamfnError(
        "SANDBOX_NOT_ALLOWED",
        `${name} asks for sandbox "inline" (no isolation), which this server refuses (--no-inline); ` +
          `give it sandbox "thread" or "process" in the function, or in the server config's functions.${name}`,
      );
    }
    const pool = new FunctionPool(name, bundle.version, bundle.path, options, this.#options.observer, this.#options.spares);
    try {
      await pool.warm();
      await beforeSwitch?.();
    } catch (err) {
      await pool.close();
      throw err;
    }
    if (this.#closed) {
      await pool.close();
      throw new StreamfnError("SHUTTING_DOWN", `not deploying ${name}: the registry closed while it loaded`);
    }
    // Looked up again: the function may have been removed while this version loaded.
    const fn: DeployedFunction = this.#functions.get(name) ?? { name, file, source, current: undefined, retiring: new Set(), sources: [] };
    const old = fn.current;
    fn.current = pool;
    fn.sources = sources;
    fn.file = file;
    fn.source = source;
    this.#functions.set(name, fn);
    if (old) this.#retire(fn, old);
    return fn;
  }

  /**
   * The function's own options, from loading the bundle in a throwaway sandbox, or from the
   * check an earlier run made of this very bundle in the same kind of sandbox.
   */
  async #check(name: string, source: FunctionSource, bundle: Bundle, kind: SandboxKind): Promise<FunctionCheck> {
    const cached = source === "file" ? this.#cachedChecks.get(name) : undefined;
    const known = cached?.version === bundle.version ? cached.checks[kind] : undefined;
    if (known && known.options !== undefined) {
      try {
        return validateCheck(known.options, known.sources, name);
      } catch {
        // A damaged record: the check is made again (and recorded anew).
      }
    }
    const batched = source === "file" && kind === "thread" ? this.#batchChecks.get(name) : undefined;
    let own: FunctionCheck | undefined;
    if (batched?.version === bundle.version) {
      const reported = (await batched.options) as { options: unknown; sources: unknown } | undefined;
      // Failed in the batch: checked alone below, for its own error (or, if it passes alone, its options).
      if (reported !== undefined) own = validateCheck(reported.options, reported.sources, name);
    }
    own ??= await probeFunction(bundle.path, name, kind);
    if (source === "file") void this.#cache?.storeCheck(name, bundle.version, kind, own);
    return own;
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

/** `task` over `items`, at most `limit` at a time; results in the order of `items`. */
async function inBatches<T, R>(items: T[], limit: number, task: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await task(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return out;
}

/** The stored uploads, sorted; none when the folder does not exist yet. */
async function uploadedEntries(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((e) => functionNameOf(e) !== undefined).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw new StreamfnError("FUNCTION_LOAD_FAILED", `cannot read uploaded functions in ${dir}: ${(err as Error).message}`);
  }
}

/** `dir` or its closest ancestor that exists (at most up to `stop` when it is an ancestor). */
function nearestExisting(dir: string, stop: string): string {
  let d = dir;
  while (!existsSync(d) && d !== stop && dirname(d) !== d) d = dirname(d);
  return d;
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
