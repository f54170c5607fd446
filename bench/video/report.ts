// The benchmark's table (Markdown) and chart (SVG).
import type { ApproachResult } from "./metrics.js";

export interface RunInfo {
  command: string;
  clips: number;
  framesPerApproach: number;
  videoSeconds: number;
  format: string;
  realtime: boolean;
  keepAliveMs: number;
  arrivalSpanS: number;
  floorCpuPerFrameMs: number;
  floorWallPerFrameMs: number;
  machine: string;
  date: string;
}

const f1 = (x: number): string => (Number.isFinite(x) ? (Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(1)) : "–");
const f2 = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : "–");

export function targetLines(results: ApproachResult[], info: RunInfo): string[] {
  const by = (n: string): ApproachResult | undefined => results.find((r) => r.name === n);
  const pe = by("faas-per-event");
  const ba = by("faas-batch");
  const job = by("stream-job");
  const pct = (a: number, b: number): string => `${((a / b) * 100).toFixed(1)}%`;
  const lines: string[] = [];
  for (const [name, label] of [["streamfn", "streamfn"], ["streamfn-inline", "streamfn on the inline tier"]] as const) {
    const s = by(name);
    if (!s) continue;
    if (pe) lines.push(`${label}: total processing overhead ${pct(s.overheadTotalMs, pe.overheadTotalMs)} of per-event FaaS's (target ≤ 10%): ${f1(s.overheadTotalMs)} vs ${f1(pe.overheadTotalMs)} ms`);
    if (ba) lines.push(`… and ${pct(s.overheadTotalMs, ba.overheadTotalMs)} of batch FaaS's (target ≤ 1%): ${f1(s.overheadTotalMs)} vs ${f1(ba.overheadTotalMs)} ms`);
    if (job) lines.push(`… and ${pct(s.overheadTotalMs, job.overheadTotalMs)} of the always-on stream job's (${f1(job.overheadTotalMs)} ms), which holds ${f1(job.idle.rssMb)} MB while no clip plays`);
    lines.push(`${label}: CPU per frame ${f2(s.cpuPerFrameMs / info.floorCpuPerFrameMs)}× the in-process floor (target ≤ 1.2×): ${f2(s.cpuPerFrameMs)} vs ${f2(info.floorCpuPerFrameMs)} ms`);
  }
  return lines;
}

export function markdownTable(results: ApproachResult[], info: RunInfo): string {
  const rows = [
    "| approach | processing overhead, all clips (ms) | per clip: median / max (ms) | per-frame latency p50 / p99 (ms) | last frame → summary p50 / max (ms) | cold starts (mean ms) | CPU s (ms a frame, × floor) | peak RSS (MB) | held while idle | identical detections |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
  ];
  for (const r of results) {
    rows.push(
      `| ${r.title} | ${f1(r.overheadTotalMs)} | ${f1(r.overheadMedianMs)} / ${f1(r.overheadMaxMs)} | ${f1(r.latencyP50Ms)} / ${f1(r.latencyP99Ms)} | ${f1(r.lastToSummaryP50Ms)} / ${f1(r.lastToSummaryMaxMs)} | ${r.coldStarts}${r.coldStarts ? ` (${f1(r.coldStartMeanMs)})` : ""} | ${f2(r.cpuS)} (${f2(r.cpuPerFrameMs)}, ${f2(r.cpuPerFrameMs / info.floorCpuPerFrameMs)}×) | ${f1(r.peakRssMb)} | ${r.idle.processes} process${r.idle.processes === 1 ? "" : "es"}, ${f1(r.idle.rssMb)} MB, ${f2(r.idle.cpuPct)}% CPU | ${r.identical}/${r.clips.length} |`,
    );
  }
  return rows.join("\n");
}

const kColors: Record<string, string> = { streamfn: "#1f77b4", "streamfn-inline": "#9467bd", "faas-per-event": "#ff7f0e", "faas-batch": "#d62728", "stream-job": "#2ca02c" };

/** Per-clip processing overhead (dots, median bar) and per-frame latency p50/p99, log scale. */
export function svgChart(results: ApproachResult[], info: RunInfo): string {
  const W = 860;
  const left = 190;
  const right = 80;
  const rowH = 34;
  const panelH = results.length * rowH;
  const top1 = 56;
  const top2 = top1 + panelH + 78;
  const H = top2 + panelH + 56;
  const all = results.flatMap((r) => [...r.clips.map((c) => c.overheadMs), r.latencyP50Ms, r.latencyP99Ms]).filter((x) => Number.isFinite(x) && x > 0);
  const lo = Math.pow(10, Math.floor(Math.log10(Math.max(0.01, Math.min(...all)))));
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...all))));
  const x = (v: number): number => left + ((Math.log10(Math.max(lo, v)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * (W - left - right);
  const esc = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">Video use case: ${info.clips} clips, ${info.framesPerApproach} frames, ${info.realtime ? "real-time" : "as fast as possible"}, ${esc(info.format)} frames (log scale)</text>`);
  const axis = (top: number, title: string): void => {
    out.push(`<text x="${left}" y="${top - 12}" font-size="13" font-weight="bold">${esc(title)}</text>`);
    for (let d = lo; d <= hi * 1.0001; d *= 10) {
      const px = x(d);
      out.push(`<line x1="${px}" y1="${top}" x2="${px}" y2="${top + panelH}" stroke="#ddd"/>`);
      out.push(`<text x="${px}" y="${top + panelH + 14}" text-anchor="middle" fill="#555">${d >= 1 ? d.toFixed(0) : d.toString()} ms</text>`);
    }
  };
  axis(top1, "Processing overhead per clip (dots: clips; bar: median)");
  results.forEach((r, i) => {
    const cy = top1 + i * rowH + rowH / 2;
    const c = kColors[r.name] ?? "#555";
    out.push(`<text x="${left - 8}" y="${cy + 4}" text-anchor="end">${esc(r.name)}</text>`);
    for (const m of r.clips) out.push(`<circle cx="${x(m.overheadMs).toFixed(1)}" cy="${cy}" r="3.5" fill="${c}" fill-opacity="0.55"/>`);
    const mx = x(r.overheadMedianMs);
    out.push(`<line x1="${mx.toFixed(1)}" y1="${cy - 11}" x2="${mx.toFixed(1)}" y2="${cy + 11}" stroke="${c}" stroke-width="3"/>`);
    out.push(`<text x="${(mx + 6).toFixed(1)}" y="${cy - 6}" fill="${c}" font-size="11">${f1(r.overheadMedianMs)}</text>`);
  });
  axis(top2, "Per-frame result latency (bar: p50, whisker to p99)");
  results.forEach((r, i) => {
    const cy = top2 + i * rowH + rowH / 2;
    const c = kColors[r.name] ?? "#555";
    out.push(`<text x="${left - 8}" y="${cy + 4}" text-anchor="end">${esc(r.name)}</text>`);
    out.push(`<rect x="${left}" y="${cy - 8}" width="${Math.max(1, x(r.latencyP50Ms) - left).toFixed(1)}" height="16" fill="${c}" fill-opacity="0.8"/>`);
    out.push(`<line x1="${x(r.latencyP50Ms).toFixed(1)}" y1="${cy}" x2="${x(r.latencyP99Ms).toFixed(1)}" y2="${cy}" stroke="${c}" stroke-width="2"/>`);
    out.push(`<line x1="${x(r.latencyP99Ms).toFixed(1)}" y1="${cy - 6}" x2="${x(r.latencyP99Ms).toFixed(1)}" y2="${cy + 6}" stroke="${c}" stroke-width="2"/>`);
    out.push(`<text x="${(x(r.latencyP99Ms) + 6).toFixed(1)}" y="${cy + 4}" fill="#333" font-size="11">${f1(r.latencyP50Ms)} / ${f1(r.latencyP99Ms)}</text>`);
  });
  out.push(`<text x="${left}" y="${H - 12}" fill="#777" font-size="11">${esc(info.machine)}, ${esc(info.date)}; ${esc(info.command)}</text>`);
  out.push("</svg>");
  return out.join("\n");
}
