import { watch } from "node:fs";
import type { FSWatcher } from "node:fs";
import { join } from "node:path";

export interface DirectoryWatcherOptions {
  /** Which entries matter (by file name); others, such as the bundle cache, are ignored. */
  accept(fileName: string): boolean;
  /** Called once per burst of changes to one file, `debounceMs` after the last one. */
  changed(file: string): void;
  error(err: Error): void;
  debounceMs?: number;
}

/**
 * Watches one directory (not its subdirectories) and reports each changed entry once its
 * changes settle: editors and `cp` write a file in several steps, often through a rename,
 * and a half-written file must not be deployed.
 */
export class DirectoryWatcher {
  readonly #watcher: FSWatcher;
  readonly #timers = new Map<string, NodeJS.Timeout>();
  readonly #options: DirectoryWatcherOptions;
  readonly #debounceMs: number;
  #closed = false;

  constructor(
    readonly dir: string,
    options: DirectoryWatcherOptions,
  ) {
    this.#options = options;
    this.#debounceMs = options.debounceMs ?? 100;
    this.#watcher = watch(dir, { persistent: false }, (_event, fileName) => {
      if (fileName === null || this.#closed) return;
      const name = fileName.toString();
      if (!options.accept(name)) return;
      this.#schedule(name);
    });
    this.#watcher.on("error", (err) => {
      if (!this.#closed) options.error(err);
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    this.#watcher.close();
  }

  #schedule(name: string): void {
    const previous = this.#timers.get(name);
    if (previous) clearTimeout(previous);
    const timer = setTimeout(() => {
      this.#timers.delete(name);
      if (!this.#closed) this.#options.changed(join(this.dir, name));
    }, this.#debounceMs);
    timer.unref();
    this.#timers.set(name, timer);
  }
}
