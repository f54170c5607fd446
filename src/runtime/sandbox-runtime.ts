// The sandbox runtime: loads one function bundle and drives one handler invocation per stream,
// talking to the router only through its port. It runs in a worker thread or a child process
// (worker-main.ts), or on the router's own thread for the inline tier (inline-sandbox.ts);
// nothing here may assume it shares memory with the router.
import { pathToFileURL } from "node:url";
import { isStreamFunction } from "../api/define.js";
import type { ErrorRecord } from "../api/errors.js";
import type { StreamFunction } from "../api/types.js";
import { importModule } from "./import-module.js";
import { OutputJournal } from "./output-journal.js";
import { SandboxOutbox, describeFatal, toErrorRecord } from "./sandbox-outbox.js";
import { LogRateLimit, streamLogger } from "./sandbox-log.js";
import { StreamRun } from "./stream-driver.js";
import type { ToSandbox } from "./protocol.js";
import type { SandboxPort } from "./sandbox-port.js";
import { kOutputWindow } from "./protocol.js";

interface Live {
  run: StreamRun;
  unacked: number;
  outputs: number;
  resume: (() => void) | undefined;
  logLimit: LogRateLimit;
}

/**
 * An output the platform refused to send. Only this module makes these, so a handler cannot
 * pass its own failure off as one (everything else it throws is HANDLER_ERROR).
 */
class OutputRefused extends Error {
  constructor(readonly record: ErrorRecord) {
    super(record.message);
  }
}

/**
 * An output as it travels: JSON text, or the bytes of a binary output. Serializing here keeps
 * the work on the instance's thread. A value with no faithful JSON form fails the stream (the
 * handler's loop is left through its `finally`): one JSON.stringify throws for (a BigInt, a
 * cycle), or one that holds a function, a symbol or a promise, which JSON would silently drop.
 */
function serializeOutput(value: unknown, n: number): string | Uint8Array {
  if (value instanceof Uint8Array) return value;
  let json: string | undefined;
  try {
    // A replacer costs a call from JSON.stringify into JS per key; most outputs are plain data,
    // which one walk here proves, and only the rest pay for the replacer's checks.
    json = isPlainJson(value, 0) ? JSON.stringify(value) : JSON.stringify(value, refuseLossy);
  } catch (err) {
    throw new OutputRefused({
      code: "OUTPUT_NOT_SERIALIZABLE",
      message: `output ${n} is not JSON-serializable: ${(err as Error).message}`,
    });
  }
  return json ?? "null";
}

/** Deepest nesting the plain-data walk follows; anything deeper (or a cycle) takes the replacer. */
const kPlainDepth = 32;

/**
 * True when `value` holds only strings, numbers, booleans, null, undefined, arrays and objects
 * without `toJSON`, at most kPlainDepth deep: what JSON.stringify turns into text with nothing
 * lost that refuseLossy would refuse. False means "not proven", never "lossy".
 */
function isPlainJson(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case "string":
    case "number":
    case "boolean":
    case "undefined":
      return true;
    case "object":
      break;
    default:
      return false;
  }
  if (value === null) return true;
  if (depth >= kPlainDepth) return false;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (!isPlainJson(value[i], depth + 1)) return false;
    return true;
  }
  const obj = value as Record<string, unknown>;
  if (typeof obj.toJSON === "function" || typeof obj.then === "function") return false;
  for (const key in obj) if (!isPlainJson(obj[key], depth + 1)) return false;
  return true;
}

function refuseLossy(this: unknown, key: string, value: unknown): unknown {
  const type = typeof value;
  if (type === "function" || type === "symbol") {
    throw new TypeError(`${key ? `"${key}" is` : "it is"} a ${type}`);
  }
  if (type === "object" && value !== null && typeof (value as { then?: unknown }).then === "function") {
    throw new TypeError(`${key ? `"${key}" is` : "it is"} a promise (missing await?)`);
  }
  return value;
}

/**
 * Loads the function and serves the port's batches until the sandbox goes away. Resolves once
 * the function is loaded and `ready` is sent; rejects if it cannot be loaded.
 */
export async function runSandbox(port: SandboxPort): Promise<void> {
  const init = port.init;
  const live = new Map<number, Live>();
  const outbox = new SandboxOutbox(
    port,
    (s, error) => {
      const entry = live.get(s);
      entry?.run.abort(Object.assign(new Error(error.message), { code: error.code }));
      finish(s, error);
    },
    init.journal ? new OutputJournal(init.journal) : undefined,
    port.fatal !== undefined, // a child process: no parent can read its event loop
    port.direct === true,
  );

  let fn: StreamFunction;
  try {
    const mod = await importModule<{ default?: unknown }>(init.importUrl ?? pathToFileURL(init.bundlePath).href);
    if (!isStreamFunction(mod.default)) {
      throw Object.assign(
        new Error("the default export is not a stream function (use defineStreamFunction)"),
        { code: "INVALID_FUNCTION" },
      );
    }
    fn = mod.default;
  } catch (err) {
    if (port.fatal) {
      await port.fatal(describeFatal(err));
      process.exit(1);
    }
    // A thread's error event (or the inline sandbox) carries it to the pool, which reports the load failure.
    throw err;
  }
  outbox.send({ k: "ready", options: fn.options, sources: [...(fn.sources ?? [])] });

  function open(s: number, streamId: string): void {
    const entry: Live = { run: undefined as unknown as StreamRun, unacked: 0, outputs: 0, resume: undefined, logLimit: new LogRateLimit() };
    const sink = {
      output(value: unknown): void | Promise<void> {
        const n = ++entry.outputs;
        outbox.output(s, n, serializeOutput(value, n), entry.run.channel.heldAt);
        if (++entry.unacked < kOutputWindow) return undefined;
        outbox.step(); // the handler now waits for credit; other handlers may run meanwhile
        return new Promise<void>((resolve) => {
          entry.resume = resolve;
        });
      },
      pulled(n: number): void {
        outbox.pull(s, n);
      },
      step(): void {
        outbox.step();
      },
    };
    // Lines logged after the stream ended (a timer the handler left behind) have nowhere to go.
    const log = streamLogger(entry.logLimit, (l, m, x) => {
      if (live.get(s) !== entry) return;
      outbox.send(x > 0 ? { k: "log", s, l, m, t: Date.now(), x } : { k: "log", s, l, m, t: Date.now() });
    });
    entry.run = new StreamRun(init.functionName, streamId, sink, log);
    live.set(s, entry);
    entry.run.drive(fn, sink).then(
      () => finish(s, undefined),
      (err: unknown) => finish(s, err instanceof OutputRefused ? err.record : toErrorRecord(err)),
    );
  }

  function finish(s: number, e: ErrorRecord | undefined): void {
    const entry = live.get(s);
    if (!entry) return; // killed earlier: the router already ended it
    live.delete(s);
    const x = entry.logLimit.takeDropped();
    outbox.send({ k: "done", s, ...(e ? { e } : {}), ...(x > 0 ? { x } : {}) });
    // Its end goes before any other handler runs (and could block the loop).
    outbox.flushNow();
  }

  port.onMessage((batch: ToSandbox[]) => {
    for (const op of batch) {
      switch (op.k) {
        case "ev": {
          const entry = live.get(op.s);
          if (!entry) break;
          if (op.b === 1) op.d = new Uint8Array(op.d as ArrayBuffer);
          else if (op.e === 1) op.d = (JSON.parse(op.d as string) as { data: unknown }).data;
          entry.run.channel.push(op);
          break;
        }
        case "open":
          open(op.s, op.id);
          break;
        case "end":
          live.get(op.s)?.run.channel.end(op.r);
          break;
        case "ack": {
          const entry = live.get(op.s);
          if (!entry) break;
          entry.unacked -= op.n;
          if (entry.resume && entry.unacked < kOutputWindow) {
            const resume = entry.resume;
            entry.resume = undefined;
            resume();
          }
          break;
        }
        case "kill": {
          const entry = live.get(op.s);
          if (!entry) break;
          live.delete(op.s);
          entry.run.abort(Object.assign(new Error(op.e.message), { code: op.e.code }));
          entry.resume?.();
          break;
        }
        case "ping":
          outbox.send({ k: "pong", t: op.t });
          break;
        case "stop":
          for (const [s, entry] of live) {
            live.delete(s);
            entry.run.abort(Object.assign(new Error("the instance was stopped"), { code: "SHUTTING_DOWN" }));
            entry.resume?.();
          }
          break;
      }
    }
  });
}
