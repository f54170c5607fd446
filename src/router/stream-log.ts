export type LogLevel = "info" | "warn" | "error";

/** One `ctx.log` line of a stream, as the router keeps it (bounded per stream) and reports it. */
export interface StreamLogEntry {
  /** Epoch milliseconds. */
  time: number;
  level: LogLevel;
  msg: string;
}

/** A stream's kept lines and how many of its lines are not among them. */
export interface StreamLogSnapshot {
  lines: StreamLogEntry[];
  dropped: number;
}

/** Lines kept per stream by default. */
export const kStreamLogLines = 200;
/** Characters of messages kept per stream by default (a line is at most 8 KiB; see runtime/sandbox-log.ts). */
export const kStreamLogChars = 256 * 1024;

/**
 * The last lines of one stream. Older lines give way to newer ones; every line that is not
 * kept (pushed out here, or dropped by the sandbox's rate limit) is counted in `dropped`.
 */
export class StreamLogBuffer {
  readonly lines: StreamLogEntry[] = [];
  dropped = 0;
  chars = 0;

  constructor(
    readonly maxLines = kStreamLogLines,
    readonly maxChars = kStreamLogChars,
  ) {}

  add(entry: StreamLogEntry): void {
    this.lines.push(entry);
    this.chars += entry.msg.length;
    while (this.lines.length > this.maxLines || (this.chars > this.maxChars && this.lines.length > 1)) {
      this.chars -= this.lines.shift()!.msg.length;
      this.dropped++;
    }
  }

  snapshot(): StreamLogSnapshot {
    return { lines: [...this.lines], dropped: this.dropped };
  }
}
