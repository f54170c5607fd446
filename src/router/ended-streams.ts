import type { StreamLogEntry } from "./stream-log.js";
import type { EndRecord, RetainedOutput } from "./stream.js";

export interface EndedStream extends Omit<EndRecord, "type"> {
  endedAt: number;
  /** Epoch ms when the stream was opened. */
  openedAt?: number;
  /** The version the stream ran on. */
  version?: string;
  /** Epoch ms when it got its slot; absent if it never did. */
  boundAt?: number;
  /** The instance it ran on. */
  instance?: number;
  /** Whether it waited for a new instance to start (a cold start) rather than finding one ready. */
  cold?: boolean;
  /** With `cold`: how long that instance took from start to ready. */
  coldStartMs?: number;
  /** Epoch ms of its last accepted event. */
  lastEventAt?: number;
  duplicates?: number;
  /** The last seq taken: a retry at or below it is acknowledged after the end too. */
  lastSeq?: number;
  /**
   * The stream's last outputs, so a subscriber can still replay them after the end. Emptied
   * (and `outputsDropped` set) when the global bound on kept outputs needs the room.
   */
  retained?: RetainedOutput[];
  outputsDropped?: boolean;
  /** The stream's last `ctx.log` lines; emptied (and counted in `logsDropped`) when the global bound on kept lines needs the room. */
  logs?: StreamLogEntry[];
  /** Lines of the stream that are not in `logs`. */
  logsDropped?: number;
}

export interface EndedStreamsLimits {
  /** Outputs kept across all ended streams. */
  maxOutputs: number;
  /** Bytes of outputs kept across all ended streams (JSON text length or binary length). */
  maxOutputBytes: number;
  /** `ctx.log` lines kept across all ended streams. */
  maxLogLines: number;
  /** Characters of `ctx.log` lines kept across all ended streams. */
  maxLogChars: number;
}

/**
 * Recently ended streams, so a late event is refused with STREAM_ENDED instead of silently
 * starting a new stream under the same id, and so a subscriber can still read an ended
 * stream's last outputs. Bounded in time, in count and in kept outputs; Maps keep insertion
 * order, so the oldest entries (and the oldest kept outputs) are always first to go.
 */
export class EndedStreams {
  readonly #entries = new Map<string, EndedStream>();
  /** The entries that still hold outputs, oldest first. */
  readonly #withOutputs = new Map<string, EndedStream>();
  readonly #limits: EndedStreamsLimits;
  #outputs = 0;
  #outputBytes = 0;
  /** The entries that still hold log lines, oldest first. */
  readonly #withLogs = new Map<string, EndedStream>();
  #logLines = 0;
  #logChars = 0;

  constructor(
    readonly retentionMs: number,
    readonly max: number,
    limits: Partial<EndedStreamsLimits> = {},
  ) {
    this.#limits = {
      maxOutputs: limits.maxOutputs ?? 100_000,
      maxOutputBytes: limits.maxOutputBytes ?? 64 * 1024 * 1024,
      maxLogLines: limits.maxLogLines ?? 100_000,
      maxLogChars: limits.maxLogChars ?? 32 * 1024 * 1024,
    };
  }

  add(key: string, info: EndedStream | (EndRecord & { endedAt: number })): void {
    const { type: _type, ...rest } = info as EndedStream & { type?: string };
    this.#delete(key);
    this.#entries.set(key, rest);
    if (rest.retained && rest.retained.length > 0) {
      this.#withOutputs.set(key, rest);
      this.#outputs += rest.retained.length;
      this.#outputBytes += retainedBytes(rest.retained);
    } else {
      rest.retained = undefined;
    }
    if (rest.logs && rest.logs.length > 0) {
      this.#withLogs.set(key, rest);
      this.#logLines += rest.logs.length;
      this.#logChars += logChars(rest.logs);
    } else {
      rest.logs = undefined;
    }
    this.#evict(info.endedAt);
  }

  get(key: string): EndedStream | undefined {
    const e = this.#entries.get(key);
    if (!e) return undefined;
    if (Date.now() - e.endedAt > this.retentionMs) {
      this.#delete(key);
      return undefined;
    }
    return e;
  }

  /**
   * The entries still within retention whose key starts with `prefix`, newest first (by
   * when they ended), each with its key. A snapshot: adding or evicting later does not change it.
   */
  newestFirst(prefix = ""): [string, EndedStream][] {
    const now = Date.now();
    const out: [string, EndedStream][] = [];
    const all = [...this.#entries];
    for (let i = all.length - 1; i >= 0; i--) {
      const [key, e] = all[i]!;
      if (now - e.endedAt > this.retentionMs) continue;
      if (key.startsWith(prefix)) out.push([key, e]);
    }
    return out;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Outputs and bytes currently kept for ended streams. */
  get kept(): { outputs: number; bytes: number } {
    return { outputs: this.#outputs, bytes: this.#outputBytes };
  }

  /** `ctx.log` lines (and their characters) currently kept for ended streams. */
  get keptLogs(): { lines: number; chars: number } {
    return { lines: this.#logLines, chars: this.#logChars };
  }

  clear(): void {
    this.#entries.clear();
    this.#withOutputs.clear();
    this.#withLogs.clear();
    this.#outputs = this.#outputBytes = this.#logLines = this.#logChars = 0;
  }

  #delete(key: string): void {
    const e = this.#entries.get(key);
    if (!e) return;
    this.#entries.delete(key);
    this.#dropOutputs(key, e);
    this.#dropLogs(key, e);
  }

  #dropLogs(key: string, e: EndedStream): void {
    if (!this.#withLogs.delete(key) || !e.logs) return;
    this.#logLines -= e.logs.length;
    this.#logChars -= logChars(e.logs);
    e.logsDropped = (e.logsDropped ?? 0) + e.logs.length;
    e.logs = undefined;
  }

  #dropOutputs(key: string, e: EndedStream): void {
    if (!this.#withOutputs.delete(key) || !e.retained) return;
    this.#outputs -= e.retained.length;
    this.#outputBytes -= retainedBytes(e.retained);
    e.retained = undefined;
    e.outputsDropped = true;
  }

  #evict(now: number): void {
    for (const [key, e] of this.#entries) {
      if (this.#entries.size <= this.max && now - e.endedAt <= this.retentionMs) break;
      this.#delete(key);
    }
    // Over the output bound: the oldest ended streams lose their outputs first (their ids stay).
    for (const [key, e] of this.#withOutputs) {
      if (this.#outputs <= this.#limits.maxOutputs && this.#outputBytes <= this.#limits.maxOutputBytes) break;
      this.#dropOutputs(key, e);
    }
    for (const [key, e] of this.#withLogs) {
      if (this.#logLines <= this.#limits.maxLogLines && this.#logChars <= this.#limits.maxLogChars) break;
      this.#dropLogs(key, e);
    }
  }
}

function logChars(lines: readonly StreamLogEntry[]): number {
  let n = 0;
  for (const l of lines) n += l.msg.length;
  return n;
}

export function retainedBytes(outputs: readonly RetainedOutput[]): number {
  let n = 0;
  for (const o of outputs) n += o.bytes ? o.bytes.byteLength : o.json.length;
  return n;
}
