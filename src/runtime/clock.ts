/**
 * Wall-clock milliseconds with sub-millisecond precision. Each thread's `performance.now()`
 * has its own origin; adding `timeOrigin` makes stamps comparable between the router and
 * its sandboxes, so an output's latency can be measured from its event's arrival.
 */
export function preciseNow(): number {
  return performance.timeOrigin + performance.now();
}
