import { Gauge } from "prom-client";
import type { Registry as PromRegistry } from "prom-client";
import type { Cluster } from "./ensure-cluster.js";
import { workConsumerConfig } from "./ensure-cluster.js";

/**
 * Work items waiting for a worker: the num_pending of the function's work consumer (queued,
 * not yet handed to any worker). Zero when idle; above zero while no worker has a free slot:
 * the lag an autoscaler scales workers on. undefined if the consumer cannot be read.
 */
export async function workPending(cluster: Cluster, fn: string): Promise<number | undefined> {
  const name = workConsumerConfig(cluster.settings, fn).durable_name!;
  try {
    const info = await cluster.jsm.consumers.info(cluster.settings.names.work, name);
    return info.num_pending;
  } catch {
    return undefined;
  }
}

/** Registers `streamfn_cluster_work_pending{function}`, read from NATS at scrape time. */
export function registerWorkPending(registry: PromRegistry, cluster: Cluster, functions: () => Iterable<string>): void {
  const g: Gauge<"function"> = new Gauge({
    name: "streamfn_cluster_work_pending",
    help: "Streams queued for a function that no worker has taken yet (num_pending of its work consumer): the lag to scale workers on.",
    labelNames: ["function"],
    registers: [registry],
    collect: async () => {
      g.reset();
      for (const fn of functions()) {
        const n = await workPending(cluster, fn);
        if (n !== undefined) g.set({ function: fn }, n);
      }
    },
  });
}
