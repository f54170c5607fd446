import { pino } from "pino";
import type { Logger } from "pino";

export type ServerLogger = Logger;

/** Anything a log record (one JSON line, newline included) can be written to. */
export interface LogDestination {
  write(line: string): unknown;
}

export interface ServerLoggerOptions {
  /** Default process.stdout. */
  destination?: LogDestination;
  /** One readable line per record instead of JSON. Default: when stdout is a TTY and no destination is given. */
  pretty?: boolean;
  /** Colours in the readable form. Default: with `pretty` on a TTY, unless NO_COLOR is set. */
  color?: boolean;
  /** Default "info". */
  level?: string;
}

/**
 * The server's log: one JSON object per line with `time` (ISO), `level` (`info`, `warn`,
 * `error`), `msg` and the record's own fields. Nothing that could hold a credential
 * (request URLs, headers) is ever a field.
 */
export function createServerLogger(options: ServerLoggerOptions = {}): ServerLogger {
  const tty = options.destination === undefined && process.stdout.isTTY === true;
  const pretty = options.pretty ?? tty;
  const out = options.destination ?? process.stdout;
  const color = options.color ?? (pretty && tty && !process.env.NO_COLOR);
  const destination: LogDestination = pretty ? readable(out, color) : out;
  return pino(
    {
      level: options.level ?? "info",
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

/** A logger that writes nothing. */
export function silentLogger(): ServerLogger {
  return pino({ level: "silent" });
}

const kColors: Record<string, string> = { error: "\x1b[31m", fatal: "\x1b[31m", warn: "\x1b[33m", info: "\x1b[36m", debug: "\x1b[90m", trace: "\x1b[90m" };
const kReset = "\x1b[0m";
const kDim = "\x1b[2m";
/** Fields the readable form shows in its own place, not as `key=value`. */
const kPlaced = new Set(["time", "level", "msg", "fn", "version", "streamId", "source", "error"]);

/**
 * The readable form, one line per record: `time level [fn@version/stream] msg key=value…`, a
 * failed stream's stack indented under it. Written here rather than taken from a package: it
 * is a dozen lines and keeps the record format ours.
 */
function readable(out: LogDestination, color: boolean): LogDestination {
  return {
    write(line: string) {
      let r: Record<string, unknown>;
      try {
        r = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return out.write(line);
      }
      return out.write(`${formatRecord(r, color)}\n`);
    },
  };
}

export function formatRecord(r: Record<string, unknown>, color: boolean): string {
  const level = String(r.level ?? "info");
  const time = typeof r.time === "string" ? r.time.slice(11, 23) : "";
  const paint = (code: string | undefined, s: string): string => (color && code ? `${code}${s}${kReset}` : s);
  const where =
    typeof r.fn === "string"
      ? ` [${r.fn}${typeof r.version === "string" ? `@${r.version.slice(0, 8)}` : ""}${typeof r.streamId === "string" ? `/${r.streamId}` : ""}]`
      : "";
  // A handler's message may hold newlines; indenting them keeps one record from passing for several.
  const msg = String(r.msg ?? "").replace(/\n/g, "\n    ");
  const extra: string[] = [];
  for (const [k, v] of Object.entries(r)) {
    if (kPlaced.has(k) || v === undefined) continue;
    extra.push(`${k}=${typeof v === "string" ? v : JSON.stringify(v)}`);
  }
  const error = r.error as { name?: string; message?: string; stack?: string } | undefined;
  let text = `${paint(kDim, time)} ${paint(kColors[level], level.padEnd(5))}${where} ${msg}${extra.length ? ` ${paint(kDim, extra.join(" "))}` : ""}`;
  if (error) {
    text += error.stack ? `\n    ${error.stack.replace(/\n/g, "\n    ")}` : ` ${error.name ?? "Error"}: ${error.message ?? ""}`;
  }
  return text;
}

/**
 * Holds records until `release()`, then writes them and everything after straight through:
 * `streamfn serve` prints its start-up line for a person first, and the records of the
 * start-up (deploys, listening) follow it. Holds at most 1 000 records; more are counted.
 */
export class HeldDestination implements LogDestination {
  #held: string[] | undefined = [];
  #dropped = 0;

  constructor(readonly out: LogDestination) {}

  write(line: string): void {
    if (!this.#held) {
      this.out.write(line);
      return;
    }
    if (this.#held.length < 1_000) this.#held.push(line);
    else this.#dropped++;
  }

  release(): void {
    const held = this.#held;
    if (!held) return;
    this.#held = undefined;
    for (const line of held) this.out.write(line);
    if (this.#dropped > 0) {
      this.out.write(`${JSON.stringify({ level: "warn", time: new Date().toISOString(), msg: "start-up log records not written", dropped: this.#dropped })}\n`);
    }
  }
}
