/** Percentile by nearest rank over an unsorted sample (copied, then sorted). NaN for an empty one. */
export function percentiles(sample: ArrayLike<number>, ps: number[]): number[] {
  const n = sample.length;
  if (n === 0) return ps.map(() => Number.NaN);
  const sorted = Float64Array.from(sample).sort();
  return ps.map((p) => sorted[Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1))]!);
}

/** Median of numbers, ignoring NaN; NaN when none are left. */
export function median(values: number[]): number {
  const v = values.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/** Per key, the median over runs of that key's values. */
export function medianOf<T extends Record<string, number>>(runs: T[]): T {
  const out: Record<string, number> = {};
  if (runs.length === 0) return out as T;
  for (const key of Object.keys(runs[0]!)) out[key] = median(runs.map((r) => r[key]!));
  return out as T;
}

/** `1234567.8` → `"1,234,568"`; `12.345` → `"12.3"` (one decimal below 100, none above). */
export function fmt(x: number, decimals?: number): string {
  if (x === undefined || Number.isNaN(x)) return "–";
  const d = decimals ?? (Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : 2);
  return x.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
