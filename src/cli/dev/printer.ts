import type { RouterObserver } from "../../router/router.js";
import type { Stream, EndRecord } from "../../router/stream.js";
import type { StreamLogEntry } from "../../router/stream-log.js";
import { describeServerRecord } from "../../server/server-log.js";
import type { Style } from "./style.js";

export interface DevPrinterOptions {
  /** Writes one line (no newline). */
  write(line: string): void;
  style: Style;
  /** Outputs printed per stream before the rest are only counted, once a second. Default 10. */
  outputsPerStream?: number;
  /** ctx.log lines printed per stream before the rest are only counted. Default 50. */
  logsPerStream?: number;
  /** Stream lines (open, output, log, end) printed per second over all streams; the rest are counted. Default 200. */
  linesPerSecond?: number;
}

interface Watched {
  tag: string;
  /** Outputs that were within the per-stream limit (printed unless the per-second cap held them back). */
  offeredOutputs: number;
  printedOutputs: number;
  /** Outputs not printed since the last summary. */
  unprintedOutputs: number;
  printedLogs: number;
  unprintedLogs: number;
}

const kDataWidth = 100;

/**
 * Prints each stream's life for a person at a terminal: open (version, cold or warm), outputs,
 * ctx.log lines and end, plus the server's own lines. Bounded: past the per-stream and
 * per-second limits lines are counted and summarised once a second instead of printed.
 */
export class DevPrinter {
  readonly router: RouterObserver;
  readonly #write: (line: string) => void;
  readonly #s: Style;
  readonly #outputsPerStream: number;
  readonly #logsPerStream: number;
  readonly #linesPerSecond: number;
  readonly #streams = new Map<Stream, Watched>();
  readonly #timer: NodeJS.Timeout;
  /** Stream lines printed in the current second, and those dropped for it. */
  #linesThisSecond = 0;
  #droppedThisSecond = 0;

  constructor(options: DevPrinterOptions) {
    this.#write = options.write;
    this.#s = options.style;
    this.#outputsPerStream = options.outputsPerStream ?? 10;
    this.#logsPerStream = options.logsPerStream ?? 50;
    this.#linesPerSecond = options.linesPerSecond ?? 200;
    this.#timer = setInterval(() => this.#tick(), 1000);
    this.#timer.unref();
    this.router = {
      streamOpened: (stream) => this.#opened(stream),
      streamBound: (stream, waitedMs) => this.#bound(stream, waitedMs),
      outputOut: (stream) => this.#output(stream),
      streamLog: (stream, entry) => this.#log(stream, entry),
      streamClosed: (stream, record) => this.#closed(stream, record),
    };
  }

  /** A line of the server's own (deploys, reloads, failures, warnings), coloured by what it says. */
  serverLine(line: string): void {
    const s = this.#s;
    if (/^streamfn: [A-Z_]+: /.test(line)) this.#write(s("red", line));
    else if (line.startsWith("streamfn: warning")) this.#write(s("yellow", line));
    else if (line.startsWith("streamfn: deployed")) this.#write(s("green", line));
    else if (line.startsWith("streamfn: removed") || / not served$/.test(line)) this.#write(s("dim", line));
    else this.#write(line);
  }

  /**
   * One JSON record of the server's log. What the stream lines already show (ctx.log lines,
   * failed streams, cold starts) and the start-up records are left out; a failed stream's
   * stack is printed under its end line, where a person at a terminal wants it.
   */
  serverRecord(json: string): void {
    let r: Record<string, unknown>;
    try {
      r = JSON.parse(json) as Record<string, unknown>;
    } catch {
      this.#write(json.trimEnd());
      return;
    }
    if (r.source === "ctx.log" || r.msg === "cold start" || r.msg === "listening" || r.msg === "instance stopped") return;
    if (r.msg === "deployed" && r.previous === undefined && r.source === undefined) return; // start-up: the listening line names them
    if (r.msg === "stream failed") {
      const err = r.error as { stack?: unknown } | undefined;
      if (typeof err?.stack === "string") this.#write(this.#s("dim", err.stack.split("\n").map((l) => `    ${l.trim()}`).join("\n")));
      return;
    }
    this.serverLine(describeServerRecord(r));
  }

  /** Any other line (type-check results and the like), as is. */
  line(text: string): void {
    this.#write(text);
  }

  close(): void {
    clearInterval(this.#timer);
    this.#tick();
  }

  #opened(stream: Stream): void {
    const w = watched(stream);
    this.#streams.set(stream, w);
    // A stream bound at once is announced by its bind, which follows right away.
    if (stream.state === "waiting") this.#streamLine(w, `${this.#s("cyan", "open")}${fullId(stream)} @${stream.version} ${this.#s("dim", "(waiting for a slot)")}`);
  }

  #bound(stream: Stream, waitedMs: number): void {
    const w = this.#streams.get(stream);
    if (!w) return;
    // The wait is what the stream felt; it includes the instance's own start.
    const start = stream.cold
      ? `cold start ${Math.round(Math.max(waitedMs, stream.instance?.coldStartMs ?? 0))} ms`
      : waitedMs >= 1
        ? `warm, waited ${Math.round(waitedMs)} ms`
        : "warm";
    this.#streamLine(w, `${this.#s("cyan", "open")}${fullId(stream)} @${stream.version} (${start})`);
  }

  #output(stream: Stream): void {
    const w = this.#streams.get(stream);
    if (!w) return;
    if (w.offeredOutputs >= this.#outputsPerStream) {
      w.unprintedOutputs++;
      return;
    }
    w.offeredOutputs++;
    const n = stream.outputs;
    // The router keeps the newest outputs for resuming subscribers; the last one is this one.
    const last = stream.retained.at(-1);
    const data = last?.n !== n ? this.#s("dim", "(not retained)") : last.json !== undefined ? abbreviate(last.json) : `<binary, ${last.bytes!.byteLength} bytes>`;
    if (this.#streamLine(w, `${this.#s("blue", `out #${n}`)} ${data}`)) w.printedOutputs++;
  }

  #log(stream: Stream, entry: StreamLogEntry): void {
    const w = this.#streams.get(stream);
    if (!w) return;
    if (w.printedLogs >= this.#logsPerStream) {
      w.unprintedLogs++;
      return;
    }
    w.printedLogs++;
    const level = entry.level === "error" ? this.#s("red", "log error") : entry.level === "warn" ? this.#s("yellow", "log warn") : this.#s("magenta", "log info");
    this.#streamLine(w, `${level} ${abbreviate(entry.msg)}`);
  }

  #closed(stream: Stream, record: EndRecord): void {
    const w = this.#streams.get(stream) ?? watched(stream);
    this.#streams.delete(stream);
    const s = this.#s;
    const ms = Date.now() - stream.openedAt;
    const parts = [`${record.events} event${record.events === 1 ? "" : "s"}`, `${record.outputs} output${record.outputs === 1 ? "" : "s"}`, `${ms} ms`];
    let text = `${record.status === "completed" ? s("green", "end") : s("red", "end")} ${record.status} (${record.reason}): ${parts.join(", ")}`;
    if (record.outputs > w.printedOutputs) text += s("dim", ` (${w.printedOutputs} of them printed)`);
    if (record.error) text += ` ${s("red", `${record.error.code}: ${abbreviate(record.error.message)}`)}`;
    // An end is always printed: it is the line that says how the stream went.
    this.#write(`${s("bold", w.tag)} ${text}`);
  }

  /** Prints a stream line unless this second's budget is spent; says whether it printed. */
  #streamLine(w: Watched, text: string): boolean {
    if (this.#linesThisSecond >= this.#linesPerSecond) {
      this.#droppedThisSecond++;
      return false;
    }
    this.#linesThisSecond++;
    this.#write(`${this.#s("bold", w.tag)} ${text}`);
    return true;
  }

  #tick(): void {
    const s = this.#s;
    for (const [stream, w] of this.#streams) {
      if (w.unprintedOutputs === 0 && w.unprintedLogs === 0) continue;
      const what: string[] = [];
      if (w.unprintedOutputs) what.push(`${w.unprintedOutputs} more output${w.unprintedOutputs === 1 ? "" : "s"}`);
      if (w.unprintedLogs) what.push(`${w.unprintedLogs} more log line${w.unprintedLogs === 1 ? "" : "s"}`);
      w.unprintedOutputs = 0;
      w.unprintedLogs = 0;
      const limits = `only the first ${this.#outputsPerStream} outputs and ${this.#logsPerStream} log lines of a stream are printed`;
      this.#write(`${s("bold", w.tag)} ${s("dim", `… ${what.join(", ")} in the last second (${stream.outputs} outputs so far; ${limits})`)}`);
    }
    if (this.#droppedThisSecond > 0) {
      this.#write(s("dim", `streamfn: … ${this.#droppedThisSecond} stream lines not printed in the last second (more than ${this.#linesPerSecond}/s)`));
    }
    this.#linesThisSecond = 0;
    this.#droppedThisSecond = 0;
  }
}

function watched(stream: Stream): Watched {
  return { tag: tagOf(stream), offeredOutputs: 0, printedOutputs: 0, unprintedOutputs: 0, printedLogs: 0, unprintedLogs: 0 };
}

/** `echo 5f3c2a1b…`: the function and enough of the id to tell streams apart. */
function tagOf(stream: Stream): string {
  const id = stream.streamId;
  return `${stream.functionName} ${id.length > 12 ? `${id.slice(0, 8)}…` : id}`;
}

/** The whole id, when the tag shows only part of it. */
function fullId(stream: Stream): string {
  return stream.streamId.length > 12 ? ` ${stream.streamId}` : "";
}

/** One line of at most kDataWidth characters. */
export function abbreviate(text: string): string {
  const one = text.replace(/\s*\n\s*/g, " ");
  return one.length > kDataWidth ? `${one.slice(0, kDataWidth - 1)}…` : one;
}
