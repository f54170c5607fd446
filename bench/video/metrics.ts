// From what the producers recorded to the numbers the benchmark reports.
import type { ClipRun } from "../../examples/video/lib/producer.js";

export interface ClipMetrics {
  clip: string;
  frames: number;
  /** First frame available → summary received. */
  e2eMs: number;
  /** Time the per-frame code computed (all frames and the summary), as it measured itself. */
  computeMs: number;
  /**
   * Processing overhead: end-to-end time minus the per-frame code's time minus the time spent
   * waiting for frames that had not been produced yet. Computed as the summary's arrival minus
   * when a platform with no overhead at all would have delivered it: one that runs each frame's
   * code the moment the frame exists (or the previous frame is done) and the summary right after
   * the last. With every frame available at once (--fast) this is exactly end-to-end minus compute.
   */
  overheadMs: number;
  /** Last frame available → summary received. */
  lastToSummaryMs: number;
  /** Per frame: frame available → its result received. */
  latenciesMs: number[];
}

export function clipMetrics(run: ClipRun): ClipMetrics {
  const summary = run.summary!;
  const us = new Array<number>(run.frames).fill(0);
  for (const r of run.results) us[r.frame] = r.us;
  let ideal = run.startedAt;
  let frameMs = 0;
  for (let i = 0; i < run.frames; i++) {
    ideal = Math.max(ideal, run.readyAt[i]!) + us[i]! / 1000;
    frameMs += us[i]! / 1000;
  }
  ideal += Math.max(0, summary.computeMs - frameMs);
  const last = run.readyAt[run.frames - 1]!;
  return {
    clip: run.clip,
    frames: run.frames,
    e2eMs: run.summaryAt - run.startedAt,
    computeMs: summary.computeMs,
    overheadMs: run.summaryAt - ideal,
    lastToSummaryMs: run.summaryAt - last,
    latenciesMs: run.resultAt.map((t, i) => t - run.readyAt[i]!),
  };
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export interface ApproachResult {
  name: string;
  title: string;
  clips: ClipMetrics[];
  frames: number;
  overheadTotalMs: number;
  overheadMedianMs: number;
  overheadMaxMs: number;
  computeTotalMs: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  lastToSummaryP50Ms: number;
  lastToSummaryMaxMs: number;
  coldStarts: number;
  coldStartMeanMs: number;
  cpuS: number;
  cpuPerFrameMs: number;
  peakRssMb: number;
  idle: { processes: number; rssMb: number; cpuPct: number; holds: string };
  /** Clips whose detections (every frame's result and the summary, timings aside) equal the in-process reference. */
  identical: number;
  mismatches: string[];
  wallS: number;
}

export function summarise(clips: ClipMetrics[]): Pick<ApproachResult, "frames" | "overheadTotalMs" | "overheadMedianMs" | "overheadMaxMs" | "computeTotalMs" | "latencyP50Ms" | "latencyP99Ms" | "lastToSummaryP50Ms" | "lastToSummaryMaxMs"> {
  const latencies = clips.flatMap((c) => c.latenciesMs);
  const overheads = clips.map((c) => c.overheadMs);
  return {
    frames: clips.reduce((a, c) => a + c.frames, 0),
    overheadTotalMs: overheads.reduce((a, b) => a + b, 0),
    overheadMedianMs: percentile(overheads, 50),
    overheadMaxMs: Math.max(...overheads),
    computeTotalMs: clips.reduce((a, c) => a + c.computeMs, 0),
    latencyP50Ms: percentile(latencies, 50),
    latencyP99Ms: percentile(latencies, 99),
    lastToSummaryP50Ms: percentile(clips.map((c) => c.lastToSummaryMs), 50),
    lastToSummaryMaxMs: Math.max(...clips.map((c) => c.lastToSummaryMs)),
  };
}
