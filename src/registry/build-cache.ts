import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, readFile, readdir, rename, stat, unlink, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { SandboxKind } from "../api/types.js";
import type { FunctionCheck } from "./probe.js";
import type { Build } from "./bundler.js";
import { kBuildFormat } from "./bundler.js";

/**
 * What a start-up can reuse from an earlier run for a function file whose sources did not
 * change: its bundle (no esbuild run, not even loaded) and the options its load check read (no
 * throwaway sandbox). One entry per function name under `<cacheDir>/build-cache/`:
 * `<name>.json` (what the bundle was made from) and `<name>.<version>.mjs` (the bundle).
 *
 * An entry is trusted only if every file the bundle was made from (streamfn's own API
 * included) hashes as it did, the nearest package.json and tsconfig.json above the file are
 * unchanged, and it was written by the same streamfn and esbuild versions with the same build
 * settings; the bundle's own hash must match its version. Anything else, an unreadable or
 * corrupt entry included, is a miss: the function is built and checked again and the entry
 * rewritten. Writing the cache is best effort: a read-only disk only costs the reuse.
 */
export class BuildCache {
  readonly dir: string;
  /**
   * Hashes read by lookups, per path: the functions of one start share streamfn's API files.
   * Only lookups (made at start-up) use them; a record hashes its files afresh.
   */
  readonly #hashes = new Map<string, Promise<string | null>>();
  /** Nearest settings file per (directory, name), found once per start: every function in a folder shares it. */
  readonly #nearest = new Map<string, Promise<string | undefined>>();
  readonly #stamp: string;
  /** Writes of one name's entry, in order: a check's record never lands on the entry before it. */
  readonly #writes = new Map<string, Promise<void>>();

  constructor(cacheDir: string) {
    this.dir = join(cacheDir, "build-cache");
    this.#stamp = buildStamp();
  }

  /** Resolves once every record begun so far is written (or given up). */
  async flush(): Promise<void> {
    await Promise.all([...this.#writes.values()]);
  }

  /**
   * Removes the entries of functions no longer in the directory, so the folder holds at most
   * one bundle per function, and partial writes of processes that died. Never rejects.
   */
  prune(keep: Set<string>): Promise<void> {
    // Queued under a key no function name can be, so `flush` waits for it too.
    return this.#serial("\0prune", async () => {
      let files: string[];
      try {
        files = await readdir(this.dir);
      } catch {
        return;
      }
      await Promise.all(
        files.map(async (f) => {
          const path = join(this.dir, f);
          if (f.endsWith(".partial")) {
            // Another writer's file in flight, or one a killed process left: only the latter goes.
            const st = await stat(path).catch(() => undefined);
            if (st && Date.now() - st.mtimeMs > kStalePartialMs) await unlink(path).catch(() => {});
            return;
          }
          const name = f.slice(0, f.indexOf("."));
          if (!keep.has(name)) await this.#serial(name, () => unlink(path).catch(() => {}));
        }),
      );
    });
  }

  /** Drops the hashes lookups read (the start-up is over; files may change from now on). */
  endLookups(): void {
    this.#hashes.clear();
    this.#nearest.clear();
  }

  /** The build of `file` made by an earlier run, if nothing it was made from changed since. */
  async lookup(name: string, file: string): Promise<CachedBuild | undefined> {
    let entry: CacheEntry;
    try {
      entry = JSON.parse(await readFile(this.#entryPath(name), "utf8")) as CacheEntry;
    } catch {
      return undefined; // none yet, or unreadable: built again
    }
    try {
      if (entry.format !== kEntryFormat || entry.stamp !== this.#stamp || entry.file !== file) return undefined;
      if (!Array.isArray(entry.sources) || !Array.isArray(entry.inputs) || typeof entry.version !== "string") return undefined;
      const context = await this.#context(file, true);
      if (context !== entry.context) return undefined;
      const hashes = await Promise.all(entry.sources.map(([path]) => this.#hash(path, true)));
      if (hashes.some((h, i) => h === null || h !== entry.sources[i]![1])) return undefined;
      const code = await readFile(this.#codePath(name, entry.version));
      if (versionOf(code) !== entry.version) return undefined;
      const build: Build = { version: entry.version, code, inputs: entry.inputs, sources: entry.sources.map(([p]) => p), hasDefaultExport: entry.hasDefaultExport === true };
      return { build, checks: entry.checks ?? {} };
    } catch {
      return undefined;
    }
  }

  /**
   * Records a fresh build of `file` (replacing the entry of an older one), begun at `startedAt`
   * (Date.now()). Never rejects. A build one of whose files was written after (or just before)
   * it began is not recorded: esbuild may have read the file before that write and this the
   * file after it, which would pair the new content's hash with the old code.
   */
  store(name: string, file: string, build: Build, startedAt: number): Promise<void> {
    return this.#serial(name, () => this.#store(name, file, build, startedAt));
  }

  /** Records what a load check of `version` read (options, sources), in the entry of that version only. Never rejects. */
  storeCheck(name: string, version: string, kind: SandboxKind, check: FunctionCheck): Promise<void> {
    return this.#serial(name, () => this.#storeCheck(name, version, kind, check));
  }

  #serial(name: string, task: () => Promise<void>): Promise<void> {
    const next = (this.#writes.get(name) ?? Promise.resolve()).then(task, task);
    this.#writes.set(name, next);
    void next.then(() => {
      if (this.#writes.get(name) === next) this.#writes.delete(name);
    });
    return next;
  }

  async #store(name: string, file: string, build: Build, startedAt: number): Promise<void> {
    try {
      const mtimes = await Promise.all(build.sources.map((p) => stat(p).then((st) => st.mtimeMs)));
      if (mtimes.some((m) => m > startedAt - kClockSlackMs)) return;
      const sources = await Promise.all(build.sources.map(async (p): Promise<[string, string | null]> => [p, await this.#hash(p, false)]));
      // A file gone already cannot be checked next time: such an entry would never be trusted.
      if (sources.some(([, h]) => h === null)) return;
      const entry: CacheEntry = {
        format: kEntryFormat,
        stamp: this.#stamp,
        file,
        context: await this.#context(file, false),
        version: build.version,
        hasDefaultExport: build.hasDefaultExport,
        inputs: build.inputs,
        sources: sources as [string, string][],
        checks: {},
      };
      await mkdir(this.dir, { recursive: true });
      await writeAtomic(this.#codePath(name, build.version), build.code);
      const previous = await this.#readEntry(name);
      await writeAtomic(this.#entryPath(name), JSON.stringify(entry));
      if (previous && previous.version !== build.version) await unlink(this.#codePath(name, previous.version)).catch(() => {});
    } catch {
      // Best effort: the next start builds it again.
    }
  }

  async #storeCheck(name: string, version: string, kind: SandboxKind, check: FunctionCheck): Promise<void> {
    try {
      const entry = await this.#readEntry(name);
      if (!entry || entry.version !== version || entry.stamp !== this.#stamp) return;
      entry.checks = { ...entry.checks, [kind]: check };
      await writeAtomic(this.#entryPath(name), JSON.stringify(entry));
    } catch {
      // Best effort.
    }
  }

  async #readEntry(name: string): Promise<CacheEntry | undefined> {
    try {
      return JSON.parse(await readFile(this.#entryPath(name), "utf8")) as CacheEntry;
    } catch {
      return undefined;
    }
  }

  #entryPath(name: string): string {
    return join(this.dir, `${name}.json`);
  }

  #codePath(name: string, version: string): string {
    return join(this.dir, `${name}.${version}.mjs`);
  }

  #hash(path: string, memo: boolean): Promise<string | null> {
    const read = (): Promise<string | null> =>
      readFile(path).then(
        (b) => createHash("sha256").update(b).digest("hex"),
        () => null,
      );
    if (!memo) return read();
    let h = this.#hashes.get(path);
    if (!h) this.#hashes.set(path, (h = read()));
    return h;
  }

  /**
   * The settings files esbuild reads for `file` besides its imports: the nearest package.json
   * (module type, `imports`) and tsconfig.json (paths, JSX) above it, by content.
   */
  async #context(file: string, memo: boolean): Promise<string> {
    const parts: string[] = [];
    for (const name of ["package.json", "tsconfig.json"]) {
      const key = `${dirname(file)}\0${name}`;
      let search = memo ? this.#nearest.get(key) : undefined;
      if (!search) {
        search = nearest(dirname(file), name);
        if (memo) this.#nearest.set(key, search);
      }
      const found = await search;
      parts.push(`${name}:${found ?? "-"}:${found ? await this.#hash(found, memo) : "-"}`);
    }
    return parts.join("|");
  }
}

export interface CachedBuild {
  build: Build;
  /** What each kind of load check read from this very bundle (unvalidated: a record on disk). */
  checks: Partial<Record<SandboxKind, { options?: unknown; sources?: unknown }>>;
}

interface CacheEntry {
  format: number;
  stamp: string;
  file: string;
  context: string;
  version: string;
  hasDefaultExport: boolean;
  inputs: string[];
  /** Every file on disk the bundle was made from, with its sha256. */
  sources: [string, string][];
  checks?: Partial<Record<SandboxKind, { options?: unknown; sources?: unknown }>>;
}

// 2: a check records its sources next to its options.
const kEntryFormat = 2;
/**
 * How far a file's mtime may trail the moment it was written: the kernel stamps files from a
 * coarse clock (a tick behind Date.now() at most); generously more.
 */
const kClockSlackMs = 50;
/** A partial write older than this was left by a process that died writing it. */
const kStalePartialMs = 10 * 60_000;

/** The version of a bundle: the start of its sha256 (as the bundler names it). */
export function versionOf(code: Uint8Array): string {
  return createHash("sha256").update(code).digest("hex").slice(0, 12);
}

/** What made a bundle besides its sources: streamfn's version, esbuild's and the build settings. */
function buildStamp(): string {
  const req = createRequire(import.meta.url);
  const version = (path: string): string => {
    try {
      return (JSON.parse(readFileSync(path, "utf8")) as { version?: string }).version ?? "?";
    } catch {
      return "?";
    }
  };
  const streamfn = version(fileURLToPath(new URL("../../../package.json", import.meta.url)));
  let esbuild = "?";
  try {
    esbuild = version(req.resolve("esbuild/package.json"));
  } catch {
    // Not resolvable: the stamp says so, and matches only another run that could not resolve it.
  }
  return `streamfn@${streamfn} esbuild@${esbuild} node-major@${process.versions.node.split(".")[0]} ${kBuildFormat}`;
}

async function nearest(from: string, name: string): Promise<string | undefined> {
  for (let d = from; ; d = dirname(d)) {
    const p = join(d, name);
    try {
      if ((await stat(p)).isFile()) return p;
    } catch {
      // not here
    }
    if (dirname(d) === d) return undefined;
  }
}

/** Write, then rename: a reader (another server on the same folder) never sees half a file. */
async function writeAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const partial = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.partial`;
  try {
    await writeFile(partial, data);
    await rename(partial, path);
  } catch (err) {
    await unlink(partial).catch(() => {});
    throw err;
  }
}
