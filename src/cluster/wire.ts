import type { MsgHdrs, NatsConnection } from "@nats-io/transport-node";
import { StorageType } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { KV } from "@nats-io/kv";
import type { ResolvedOptions } from "../api/types.js";
import type { Cluster } from "./ensure-cluster.js";
import { checkFunctionName, streamToken } from "./names.js";
import { clusterError } from "./nats-errors.js";

/**
 * What travels between gateways and workers beyond the JetStream layer: the kinds of records
 * on an event subject, the function catalog, the streams bucket and the per-stream progress
 * subject. Kept in one module so both sides agree on every header and key.
 */

/**
 * Event record kind: `env` (the producer's envelope text as it came, `{"data": …, "seq": …}`),
 * `json` (the data's JSON text) or `bin` data, `end` (input ended) or `cancel` (the stream was failed).
 */
export const kEventKindHeader = "Sfn-Ev";
/** The producer's seq of a data event. */
export const kEventSeqHeader = "Sfn-Seq";
/** The input's end reason on an `end` record. */
export const kEndReasonHeader = "Sfn-Reason";
/** Set on an output record whose body is binary (else it is the output's JSON text). */
export const kBinaryOutputHeader = "Sfn-Bin";

export type EventKind = "env" | "json" | "bin" | "end" | "cancel";

export function eventKindOf(h: MsgHdrs | undefined): EventKind | undefined {
  const k = h?.get(kEventKindHeader);
  return k === "env" || k === "json" || k === "bin" || k === "end" || k === "cancel" ? k : undefined;
}

/** One function as a worker serves it: what a gateway checks a request against before a stream exists. */
export interface CatalogEntry {
  version: string;
  options: ResolvedOptions;
  /** Workers serving it (their names), for status pages. */
  worker: string;
  updatedAt: number;
}

/** A stream id's record in the streams bucket: claimed by the gateway that opened it, then ended. */
export interface StreamRecord {
  state: "live" | "ended";
  gateway: string;
  openedAt: number;
  endedAt?: number;
  end?: unknown;
  /** The producer attachment that holds the stream now (a reattach with `?resume=1` replaces it). */
  attach?: string;
}

export interface ClusterBuckets {
  catalog: KV;
  streams: KV;
  /** Each worker's status, refreshed every few seconds (see WorkerStatus). */
  workers: KV;
}

/** What a worker reports about itself for status pages. */
export interface WorkerStatus {
  worker: string;
  takeovers: number;
  functions: { name: string; slots: number; active: number }[];
  streams: { function: string; streamId: string; epoch: number; takeover: boolean }[];
  updatedAt: number;
}

/** How often a worker refreshes its status record; one older than 3 × this is shown as gone. */
export const kWorkerStatusEveryMs = 2_000;

function bucketPrefix(cluster: Cluster): string {
  // The owners bucket is `<prefix->sfn-owners`: the other buckets share its prefix.
  return cluster.settings.names.owners.slice(0, -"sfn-owners".length);
}

/** Creates (or binds to) the catalog and streams buckets; idempotent, like ensureCluster. */
export async function ensureBuckets(cluster: Cluster): Promise<ClusterBuckets> {
  const p = bucketPrefix(cluster);
  const kvm = new Kvm(cluster.nc);
  const storage = cluster.settings.storage === "memory" ? StorageType.Memory : StorageType.File;
  try {
    const catalog = await kvm.create(`${p}sfn-catalog`, { history: 1, storage, replicas: 1 });
    const streams = await kvm.create(`${p}sfn-streams`, { history: 1, storage, replicas: 1, ttl: cluster.settings.retentionMs });
    const workers = await kvm.create(`${p}sfn-workers`, { history: 1, storage, replicas: 1 });
    return { catalog, streams, workers };
  } catch (err) {
    throw clusterError("cannot create the catalog and streams buckets", err);
  }
}

/** The KV key of one stream id (also the catalog key of a function: its name). */
export function streamRecordKey(fn: string, streamId: string): string {
  return `${checkFunctionName(fn)}.${streamToken(streamId)}`;
}

/** Core-NATS subject where the owning worker reports how far it has consumed a stream's events. */
export function progressSubject(cluster: Cluster, fn: string, streamId: string): string {
  return `${cluster.settings.names.eventRoot.replace(/sfn\.ev$/, "sfn.ctl")}.${checkFunctionName(fn)}.${streamToken(streamId)}`;
}

/** `{ consumed }`: events of the stream the handler has taken (positions 1..consumed). */
export interface Progress {
  consumed: number;
}

export function publishProgress(nc: NatsConnection, subject: string, p: Progress): void {
  nc.publish(subject, JSON.stringify(p));
}
