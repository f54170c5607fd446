// CPU time and memory of other processes, read from /proc (Linux): the benchmark charges each
// approach for the processes it runs (server, function instances, Redis, stream job), never for
// the producers that feed them.
import { readFileSync, writeFileSync } from "node:fs";

const kTicksPerSecond = 100; // USER_HZ: 100 on every Linux this benchmark targets

export interface ProcSample {
  cpuS: number;
  rssMb: number;
  /** The process's peak resident set so far (VmHWM). */
  hwmMb: number;
}

/** One reading of a live process; undefined when it has gone. */
export function readProc(pid: number): ProcSample | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // fields after the command name (which may contain spaces) start at state (field 3)
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(rest[11]) + Number(rest[12]); // utime, stime: fields 14 and 15
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0);
    return { cpuS: ticks / kTicksPerSecond, rssMb: kb("VmRSS") / 1024, hwmMb: kb("VmHWM") / 1024 };
  } catch {
    return undefined;
  }
}

/** Resets a process's VmHWM to its current RSS (Linux: "5" into clear_refs), so peaks count from now. */
export function resetPeak(pid: number): void {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
  } catch {
    // not permitted or gone: the peak then includes the process's start-up
  }
}

/**
 * The processes of one approach. CPU is counted from when a process is tracked (or from a
 * baseline taken with `markStart`) to its retirement (read just before it is stopped) or now.
 * Peak memory is the largest sum of resident sets seen at once (sampled), or a single process's
 * own peak if larger.
 */
export class ProcessMeter {
  readonly #live = new Map<number, { label: string; baseCpuS: number; last: ProcSample }>();
  #retiredCpuS = 0;
  #peakSumMb = 0;
  #peakOneMb = 0;
  #timer: NodeJS.Timeout | undefined;

  /** Starts counting a process; `fromNow` excludes what it spent before (its own start-up). */
  track(pid: number, label: string, fromNow: boolean): void {
    const s = readProc(pid) ?? { cpuS: 0, rssMb: 0, hwmMb: 0 };
    this.#live.set(pid, { label, baseCpuS: fromNow ? s.cpuS : 0, last: s });
  }

  /** Takes a final reading of a process about to be stopped. */
  retire(pid: number): void {
    const entry = this.#live.get(pid);
    if (!entry) return;
    const s = readProc(pid) ?? entry.last;
    this.#retiredCpuS += s.cpuS - entry.baseCpuS;
    this.#peakOneMb = Math.max(this.#peakOneMb, s.hwmMb);
    this.#live.delete(pid);
  }

  /** Counts CPU and peak memory from now on, for the processes already tracked. */
  markStart(): void {
    this.#retiredCpuS = 0;
    this.#peakSumMb = 0;
    this.#peakOneMb = 0;
    for (const [pid, e] of this.#live) {
      resetPeak(pid);
      e.last = readProc(pid) ?? e.last;
      e.baseCpuS = e.last.cpuS;
    }
  }

  sample(): { cpuS: number; rssMb: number; processes: number } {
    let cpuS = this.#retiredCpuS;
    let rssMb = 0;
    for (const [pid, e] of this.#live) {
      const s = readProc(pid) ?? e.last;
      e.last = s;
      cpuS += s.cpuS - e.baseCpuS;
      rssMb += s.rssMb;
      this.#peakOneMb = Math.max(this.#peakOneMb, s.hwmMb);
    }
    this.#peakSumMb = Math.max(this.#peakSumMb, rssMb);
    return { cpuS, rssMb, processes: this.#live.size };
  }

  get peakMb(): number {
    return Math.max(this.#peakSumMb, this.#peakOneMb);
  }

  startSampling(everyMs = 100): void {
    this.#timer ??= setInterval(() => this.sample(), everyMs);
    this.#timer.unref();
  }

  stopSampling(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  livePids(): number[] {
    return [...this.#live.keys()];
  }
}
