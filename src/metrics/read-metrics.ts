import { Counter, Gauge } from "prom-client";
import type { Registry as PromRegistry } from "prom-client";
import type { RateLimiter } from "../auth/rate-limits.js";

/** A counter whose value is read at scrape time from a plain number kept elsewhere. */
export function registerReadCounter(registry: PromRegistry, name: string, help: string, read: () => Iterable<[Record<string, string>, number]>, labelNames: string[]): void {
  const c: Counter<string> = new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect: () => {
      c.reset();
      for (const [labels, n] of read()) c.inc(labels, n);
    },
  });
}

/** A gauge read at scrape time. */
export function registerReadGauge(registry: PromRegistry, name: string, help: string, read: () => Iterable<[Record<string, string>, number]>, labelNames: string[]): void {
  const g: Gauge<string> = new Gauge({
    name,
    help,
    labelNames,
    registers: [registry],
    collect: () => {
      g.reset();
      for (const [labels, n] of read()) g.set(labels, n);
    },
  });
}

/** `streamfn_rate_limited_total{limit}`: new streams refused and event reads paused by a rate limit. */
export function registerRateLimitMetric(registry: PromRegistry, limiter: RateLimiter): void {
  registerReadCounter(
    registry,
    "streamfn_rate_limited_total",
    "new streams refused (streamsPerS, concurrentStreams) and event reads paused (eventsPerS, bytesPerS) because a client or token was over a rate limit",
    () => [...limiter.overLimit].map(([limit, n]) => [{ limit }, n] as [Record<string, string>, number]),
    ["limit"],
  );
}
