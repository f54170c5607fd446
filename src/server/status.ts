import type { FunctionPool } from "../instances/pool.js";
import type { FunctionSource } from "../registry/registry.js";
import type { ConnectorsStatus } from "../connectors/connectors.js";
import type { StreamfnServer } from "./server.js";

export interface InstanceStatus {
  id: number;
  state: string;
  /** Streams holding one of its slots. */
  streams: number;
  slots: number;
  /** From start to ready; null while starting. */
  coldStartMs: number | null;
}

export interface VersionStatus {
  version: string;
  /** `current` takes new streams; `retiring` only finishes the streams it has. */
  role: "current" | "retiring";
  deployedAt: string;
  liveStreams: number;
  queuedStreams: number;
  coldStarts: number;
  slots: { inUse: number; total: number };
  instances: InstanceStatus[];
}

export interface FunctionStatus {
  name: string;
  file: string;
  /** `file`: a file in the served directory; `uploaded`: through the control API. */
  source: FunctionSource;
  /** The version new streams get; null once the file is gone and the function only drains. */
  version: string | null;
  options: FunctionPool["options"] | null;
  liveStreams: number;
  queuedStreams: number;
  /** Instances started since the server started, over every version. */
  coldStarts: number;
  versions: VersionStatus[];
}

export interface ServerStatus {
  startedAt: string;
  process: { pid: number; uptimeSeconds: number; rssBytes: number; heapUsedBytes: number; node: string };
  /** Whether function files are redeployed when they change. */
  watching: boolean;
  liveStreams: number;
  queuedStreams: number;
  functions: FunctionStatus[];
  /** Broker connections and the sources bound over them (see docs/connectors.md). */
  connectors: ConnectorsStatus;
}

/** The JSON behind GET /v1/status: per function its versions, instances, slots and streams. */
export function buildStatus(server: StreamfnServer): ServerStatus {
  // Counted per (function, version): what the stream table tells about each stream.
  const streams = new Map<string, { live: number; queued: number }>();
  let queued = 0;
  for (const s of server.table.live()) {
    const key = `${s.functionName}@${s.version}`;
    let e = streams.get(key);
    if (!e) streams.set(key, (e = { live: 0, queued: 0 }));
    e.live++;
    if (s.state === "waiting") {
      e.queued++;
      queued++;
    }
  }
  const functions = server.registry.functions().map((fn): FunctionStatus => {
    const pools: [FunctionPool, VersionStatus["role"]][] = [];
    if (fn.current) pools.push([fn.current, "current"]);
    for (const p of fn.retiring) pools.push([p, "retiring"]);
    const versions = pools.map(([pool, role]): VersionStatus => {
      const counts = streams.get(`${fn.name}@${pool.version}`) ?? { live: 0, queued: 0 };
      const instances = [...pool.instances].map(
        (i): InstanceStatus => ({
          id: i.id,
          state: i.state,
          streams: i.tenants.size,
          slots: i.concurrency,
          coldStartMs: i.coldStartMs === undefined ? null : Math.round(i.coldStartMs * 10) / 10,
        }),
      );
      return {
        version: pool.version,
        role,
        deployedAt: new Date(pool.createdAt).toISOString(),
        liveStreams: counts.live,
        queuedStreams: counts.queued,
        coldStarts: pool.coldStarts,
        slots: { inUse: instances.reduce((n, i) => n + i.streams, 0), total: instances.reduce((n, i) => n + i.slots, 0) },
        instances,
      };
    });
    return {
      name: fn.name,
      file: fn.file,
      source: fn.source,
      version: fn.current?.version ?? null,
      options: fn.current?.options ?? null,
      liveStreams: versions.reduce((n, v) => n + v.liveStreams, 0),
      queuedStreams: versions.reduce((n, v) => n + v.queuedStreams, 0),
      coldStarts: server.metrics.coldStarts(fn.name),
      versions,
    };
  });
  const memory = process.memoryUsage();
  return {
    startedAt: new Date(server.startedAt).toISOString(),
    process: {
      pid: process.pid,
      uptimeSeconds: Math.round(process.uptime() * 10) / 10,
      rssBytes: memory.rss,
      heapUsedBytes: memory.heapUsed,
      node: process.version,
    },
    watching: server.registry.watching,
    liveStreams: server.table.liveCount,
    queuedStreams: queued,
    functions,
    connectors: server.connectors.status(),
  };
}
