import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { packageDir } from "../util.js";
import type { CheckReply, CheckRequest } from "./typecheck-worker.js";
import type { Style } from "./style.js";

export interface TypeCheckerOptions {
  dir: string;
  cwd: string;
  /** The files to check from (each one's imports are followed). */
  files(): string[];
  print(line: string): void;
  style: Style;
}

/** Diagnostics printed per check; the rest are counted. */
const kMaxLines = 50;

/**
 * Type-checks the functions with the project's own TypeScript, in a worker thread so serving
 * never waits for it. One check at a time; a request during a check runs one more after it.
 */
export class TypeChecker {
  readonly #options: TypeCheckerOptions;
  #worker: Worker | undefined;
  #running = false;
  #again = false;
  #off = false;

  constructor(options: TypeCheckerOptions) {
    this.#options = options;
  }

  request(): void {
    if (this.#off) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    const files = this.#options.files();
    if (files.length === 0) return;
    this.#running = true;
    const req: CheckRequest = { dir: this.#options.dir, cwd: this.#options.cwd, files };
    this.#workerNow().postMessage(req);
  }

  close(): void {
    this.#off = true;
    void this.#worker?.terminate();
    this.#worker = undefined;
  }

  #workerNow(): Worker {
    if (this.#worker) return this.#worker;
    // From the package root: this module may run from the CLI's one-file bundle (dist/src/cli/), not beside the worker.
    const worker = new Worker(join(packageDir(), "dist", "src", "cli", "dev", "typecheck-worker.js"));
    worker.unref();
    worker.on("message", (reply: CheckReply) => this.#done(reply));
    worker.on("error", (err) => {
      this.#options.print(this.#options.style("red", `streamfn: type checking stopped: ${err.message}`));
      this.close();
    });
    this.#worker = worker;
    return worker;
  }

  #done(reply: CheckReply): void {
    const { print, style } = this.#options;
    this.#running = false;
    switch (reply.kind) {
      case "missing":
        print(
          style(
            "yellow",
            `streamfn: type checking is off: typescript is not installed in ${reply.tried.join(" or ")}; ` +
              "install it in your project (npm install --save-dev typescript) and restart dev",
          ),
        );
        this.close();
        return;
      case "crash":
        print(style("red", `streamfn: type check failed: ${reply.message}`));
        break;
      case "result": {
        for (const line of reply.lines.slice(0, kMaxLines)) print(line.replace(/ error (TS\d+):/, ` ${style("red", "error")} $1:`));
        if (reply.lines.length > kMaxLines) print(style("dim", `… ${reply.lines.length - kMaxLines} more`));
        const using = reply.tsconfig ? `, ${reply.tsconfig}` : ", strict defaults";
        print(
          reply.errors === 0
            ? style("green", `streamfn: types: no type errors (${using.slice(2)})`)
            : style("red", `streamfn: types: ${reply.errors} type error${reply.errors === 1 ? "" : "s"} (the functions still serve${using})`),
        );
        break;
      }
    }
    if (this.#again) {
      this.#again = false;
      this.request();
    }
  }
}
