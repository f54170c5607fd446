import type { StreamfnServer } from "./server.js";

/** The JSON behind GET /v1/status: per function its versions, instances, slots and streams. */
export function buildStatus(server: StreamfnServer): Record<string, unknown> {
  const live = new Map<string, { live: number; waiting: number }>();
  for (const s of server.router.live()) {
    const k = `${s.functionName}@${s.version}`;
    const e = live.get(k) ?? { live: 0, waiting: 0 };
    e.live++;
    if (s.state === "waiting") e.waiting++;
    live.set(k, e);
  }
  const functions = server.registry.functions().map((fn) => {
    const pools = [fn.current, ...fn.retiring];
    return {
      name: fn.name,
      file: fn.file,
      version: fn.current.version,
      options: fn.current.options,
      versions: pools.map((pool) => {
        const stats = pool.stats();
        const streams = live.get(`${fn.name}@${pool.version}`) ?? { live: 0, waiting: 0 };
        return {
          version: pool.version,
          current: pool === fn.current,
          ...stats,
          liveStreams: streams.live,
          instanceList: [...pool.instances].map((i) => ({
            id: i.id,
            state: i.state,
            streams: i.tenants.size,
            slots: i.concurrency,
            coldStartMs: i.coldStartMs === undefined ? null : Math.round(i.coldStartMs * 10) / 10,
          })),
        };
      }),
    };
  });
  return { liveStreams: server.router.liveCount, functions };
}
