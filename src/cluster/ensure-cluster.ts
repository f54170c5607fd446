import { nanos } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import { AckPolicy, DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType, jetstreamManager } from "@nats-io/jetstream";
import type { JetStreamManager, StreamConfig, ConsumerConfig } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { KV } from "@nats-io/kv";
import type { ClusterNames } from "./names.js";
import { workConsumerName, workSubject } from "./names.js";
import { clusterError } from "./nats-errors.js";

export interface ClusterSettings {
  names: ClusterNames;
  /** How long events and outputs of streams are kept at most (completed streams are purged sooner). */
  retentionMs: number;
  /** The work lease: a worker silent this long loses its streams to another. */
  leaseMs: number;
  /** Server dedup window for appends and work items (a retry inside it is dropped by the server). */
  duplicateWindowMs: number;
  /** Open streams one function may have at once (the work consumer's max_ack_pending). */
  maxLiveStreamsPerFunction: number;
  /** `file` (default) or `memory` (benchmarks, throwaway clusters). */
  storage: "file" | "memory";
}

export const kDefaultClusterSettings: Omit<ClusterSettings, "names"> = {
  retentionMs: 24 * 3_600_000,
  leaseMs: 15_000,
  duplicateWindowMs: 120_000,
  maxLiveStreamsPerFunction: 100_000,
  storage: "file",
};

function storage(s: ClusterSettings): StorageType {
  return s.storage === "memory" ? StorageType.Memory : StorageType.File;
}

function logStream(name: string, subjects: string, s: ClusterSettings): Partial<StreamConfig> & { name: string } {
  return {
    name,
    subjects: [`${subjects}.>`],
    retention: RetentionPolicy.Limits,
    storage: storage(s),
    discard: DiscardPolicy.Old,
    max_age: nanos(s.retentionMs),
    duplicate_window: nanos(Math.min(s.duplicateWindowMs, s.retentionMs)),
    // ADR-31: reads by subject without a consumer (next_by_subj / last_by_subj).
    allow_direct: true,
    num_replicas: 1,
  };
}

/** Creates the stream, or brings an existing one to this config; safe to run from many processes at once. */
async function upsertStream(jsm: JetStreamManager, config: Partial<StreamConfig> & { name: string }): Promise<void> {
  const name = config.name;
  try {
    await jsm.streams.add(config);
    return;
  } catch (err) {
    // Exists with another config (or another process created it a moment ago): update it.
    try {
      await jsm.streams.update(name, config);
    } catch (err2) {
      throw clusterError(`cannot create or update JetStream stream ${name}`, err2 instanceof Error ? err2 : err);
    }
  }
}

export interface Cluster {
  nc: NatsConnection;
  jsm: JetStreamManager;
  owners: KV;
  settings: ClusterSettings;
}

/**
 * Creates (or updates) the streams and the ownership bucket cluster mode needs. Idempotent:
 * every gateway and worker calls it at start, several at once.
 */
export async function ensureCluster(nc: NatsConnection, settings: ClusterSettings): Promise<Cluster> {
  const jsm = await jetstreamManager(nc).catch((err: unknown) => {
    throw clusterError("JetStream is not available on the NATS server (start it with -js)", err);
  });
  const n = settings.names;
  await upsertStream(jsm, logStream(n.events, n.eventRoot, settings));
  await upsertStream(jsm, logStream(n.outputs, n.outputRoot, settings));
  await upsertStream(jsm, {
    name: n.work,
    subjects: [`${n.workRoot}.>`],
    // An item lives until the worker that owns its stream acks it at the stream's end.
    retention: RetentionPolicy.Workqueue,
    storage: storage(settings),
    discard: DiscardPolicy.Old,
    duplicate_window: nanos(settings.duplicateWindowMs),
    num_replicas: 1,
  });
  let owners: KV;
  try {
    owners = await new Kvm(nc).create(n.owners, { history: 1, storage: storage(settings), replicas: 1 });
  } catch (err) {
    throw clusterError(`cannot create KV bucket ${n.owners}`, err);
  }
  return { nc, jsm, owners, settings };
}

export function workConsumerConfig(settings: ClusterSettings, fn: string): Partial<ConsumerConfig> {
  return {
    durable_name: workConsumerName(fn),
    filter_subject: workSubject(settings.names, fn),
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    // The lease: an item not acked nor touched with working() for this long goes to another worker.
    ack_wait: nanos(settings.leaseMs),
    max_deliver: -1,
    max_ack_pending: settings.maxLiveStreamsPerFunction,
    max_waiting: 512,
  };
}

/** The one durable pull consumer per function that all workers share (created on first use). */
export async function ensureWorkConsumer(cluster: Cluster, fn: string, update = true): Promise<string> {
  const config = workConsumerConfig(cluster.settings, fn);
  const name = config.durable_name!;
  if (!update) {
    // A plain add would update an existing consumer to this process's lease: leave it as is.
    const exists = await cluster.jsm.consumers.info(cluster.settings.names.work, name).then(
      () => true,
      () => false,
    );
    if (exists) return name;
  }
  try {
    await cluster.jsm.consumers.add(cluster.settings.names.work, config);
  } catch (err) {
    // A gateway only makes sure the consumer exists: the workers own its lease settings.
    if (!update) return name;
    try {
      await cluster.jsm.consumers.update(cluster.settings.names.work, name, {
        ack_wait: config.ack_wait!,
        max_deliver: config.max_deliver!,
        max_ack_pending: config.max_ack_pending!,
        max_waiting: config.max_waiting!,
      });
    } catch (err2) {
      throw clusterError(`cannot create work consumer ${name}`, err2 instanceof Error ? err2 : err);
    }
  }
  return name;
}
