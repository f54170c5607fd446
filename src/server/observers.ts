import type { PoolObserver } from "../instances/pool.js";
import type { RouterObserver } from "../router/router.js";

const kRouterHooks = ["streamOpened", "streamBound", "streamClosed", "eventsIn", "outputOut", "openRefused", "streamLog"] as const satisfies readonly (keyof RouterObserver)[];
const kPoolHooks = ["coldStart", "instanceGone"] as const satisfies readonly (keyof PoolObserver)[];

/**
 * One observer that calls each given observer in turn. A hook none of them has stays absent,
 * so the router skips it (and the work of computing its arguments) entirely.
 */
export function composeRouterObservers(...observers: (RouterObserver | undefined)[]): RouterObserver {
  return compose(kRouterHooks, observers);
}

export function composePoolObservers(...observers: (PoolObserver | undefined)[]): PoolObserver {
  return compose(kPoolHooks, observers);
}

type Hook = (...args: unknown[]) => void;

function compose<T extends object>(hooks: readonly (keyof T)[], observers: (T | undefined)[]): T {
  const out: Partial<Record<keyof T, Hook>> = {};
  for (const hook of hooks) {
    const fns: Hook[] = [];
    for (const o of observers) {
      // Bound, so observers written as classes keep their `this`.
      const f = o?.[hook];
      if (typeof f === "function") fns.push((f as Hook).bind(o));
    }
    if (fns.length === 1) out[hook] = fns[0];
    else if (fns.length > 1) {
      out[hook] = (...args: unknown[]) => {
        for (const f of fns) f(...args);
      };
    }
  }
  return out as T;
}
