import { join } from "node:path";
import { DirectoryWatcher } from "./watcher.js";

export interface InputWatcherOptions {
  /** Paths never reported (the bundle cache, node_modules, dot files). */
  ignore(path: string): boolean;
  /** Once per burst of changes to one path, after it settles. */
  changed(path: string): void;
  /** The root directory can no longer be watched. */
  rootError(err: Error): void;
  debounceMs?: number;
}

/**
 * Watches the functions directory and every directory holding a file a function imports.
 * Each directory is watched on its own (not recursively), so only the folders that matter
 * are followed, whatever else lies under the functions directory.
 */
export class InputWatcher {
  readonly #dirs = new Map<string, DirectoryWatcher>();
  readonly #options: InputWatcherOptions;
  #closed = false;

  constructor(
    readonly root: string,
    options: InputWatcherOptions,
  ) {
    this.#options = options;
    // The root must be watchable: this throws when it is not.
    this.#dirs.set(root, this.#watch(root, (err) => options.rootError(err)));
  }

  /** Watches exactly the root and `dirs`; a directory that cannot be watched (gone) is skipped until asked again. */
  watchDirs(dirs: Iterable<string>): void {
    if (this.#closed) return;
    const wanted = new Set(dirs);
    wanted.delete(this.root);
    for (const [dir, w] of this.#dirs) {
      if (dir !== this.root && !wanted.has(dir)) {
        w.close();
        this.#dirs.delete(dir);
      }
    }
    for (const dir of wanted) {
      if (this.#dirs.has(dir) || this.#options.ignore(dir)) continue;
      try {
        this.#dirs.set(
          dir,
          this.#watch(dir, () => {
            // A folder that went away: its files' importers see it when they rebuild.
            this.#dirs.get(dir)?.close();
            this.#dirs.delete(dir);
          }),
        );
      } catch {
        // Missing now; the next rebuild that still needs it asks again.
      }
    }
  }

  /** The directories watched now (root first). */
  get dirs(): string[] {
    return [...this.#dirs.keys()];
  }

  close(): void {
    this.#closed = true;
    for (const w of this.#dirs.values()) w.close();
    this.#dirs.clear();
  }

  #watch(dir: string, error: (err: Error) => void): DirectoryWatcher {
    return new DirectoryWatcher(dir, {
      accept: (fileName) => !fileName.startsWith(".") && fileName !== "node_modules" && !this.#options.ignore(join(dir, fileName)),
      changed: (path) => {
        if (!this.#closed) this.#options.changed(path);
      },
      error,
      debounceMs: this.#options.debounceMs,
    });
  }
}
