import type { ConnectOptions } from "./connect.js";
import { connectCluster } from "./connect.js";
import type { Cluster, ClusterSettings } from "./ensure-cluster.js";
import { ensureCluster, kDefaultClusterSettings } from "./ensure-cluster.js";
import { EventLog } from "./event-log.js";
import type { EventLogOptions } from "./event-log.js";
import { clusterNames } from "./names.js";
import { OutputLog } from "./output-log.js";
import { Ownership } from "./ownership.js";
import { WorkQueue } from "./work-queue.js";

export interface ClusterHandle {
  cluster: Cluster;
  events: EventLog;
  outputs: OutputLog;
  work: WorkQueue;
  owners: Ownership;
  close(): Promise<void>;
}

export interface OpenClusterOptions extends ConnectOptions, Partial<Omit<ClusterSettings, "names">> {
  /** Keeps this deployment's streams, subjects and bucket apart from others on the same NATS account. */
  prefix?: string;
  eventLog?: EventLogOptions;
}

/** Connects, makes sure the streams and bucket exist, and returns the layer's four parts. */
export async function openCluster(options: OpenClusterOptions): Promise<ClusterHandle> {
  const { prefix, eventLog, servers, token, user, pass, name, timeoutMs, logger, ...rest } = options;
  const settings: ClusterSettings = { ...kDefaultClusterSettings, ...rest, names: clusterNames(prefix) };
  const nc = await connectCluster({ servers, token, user, pass, name, timeoutMs, logger });
  try {
    const cluster = await ensureCluster(nc, settings);
    return {
      cluster,
      events: new EventLog(cluster, eventLog),
      outputs: new OutputLog(cluster),
      work: new WorkQueue(cluster),
      owners: new Ownership(cluster),
      close: () => nc.drain(),
    };
  } catch (err) {
    await nc.close();
    throw err;
  }
}
