import type { KV } from "@nats-io/kv";
import type { Cluster } from "./ensure-cluster.js";
import { ownerKey } from "./names.js";
import { clusterError, isWrongLastSequence } from "./nats-errors.js";

export interface OwnerRecord {
  worker: string;
  epoch: number;
}

export interface Claim extends OwnerRecord {
  /** KV revision of this claim: the owner checks it is still current before renewing its lease. */
  revision: number;
  /** The owner this claim replaced (undefined for a first claim). */
  previous: OwnerRecord | undefined;
}

/**
 * Who owns which stream, in the `sfn-owners` bucket: a first claim is a create (fails if the
 * key exists), a takeover an update checked against the revision read (never get-check-delete),
 * so of two would-be successors exactly one wins, with the epoch one above its predecessor's.
 */
export class Ownership {
  readonly #cluster: Cluster;
  readonly #kv: KV;

  constructor(cluster: Cluster) {
    this.#cluster = cluster;
    this.#kv = cluster.owners;
  }

  async get(fn: string, streamId: string): Promise<(OwnerRecord & { revision: number }) | null> {
    try {
      const e = await this.#kv.get(ownerKey(fn, streamId));
      if (!e || e.operation !== "PUT") return null;
      return { ...(e.json() as OwnerRecord), revision: e.revision };
    } catch (err) {
      throw clusterError(`cannot read the owner of stream ${streamId} (${fn})`, err);
    }
  }

  /**
   * Claims the stream for `worker`: creates the key, or takes over from its current owner.
   * Returns null when another worker won the race (this one must not run the stream).
   */
  async acquire(fn: string, streamId: string, worker: string): Promise<Claim | null> {
    const key = ownerKey(fn, streamId);
    try {
      const revision = await this.#kv.create(key, JSON.stringify({ worker, epoch: 1 } satisfies OwnerRecord));
      return { worker, epoch: 1, revision, previous: undefined };
    } catch (err) {
      if (!isWrongLastSequence(err)) throw clusterError(`cannot claim stream ${streamId} (${fn})`, err);
    }
    const current = await this.get(fn, streamId);
    if (!current) return null; // released in between (the stream ended)
    const epoch = current.epoch + 1;
    try {
      const revision = await this.#kv.update(key, JSON.stringify({ worker, epoch } satisfies OwnerRecord), current.revision);
      return { worker, epoch, revision, previous: { worker: current.worker, epoch: current.epoch } };
    } catch (err) {
      if (isWrongLastSequence(err)) return null;
      throw clusterError(`cannot take over stream ${streamId} (${fn})`, err);
    }
  }

  /** True while `claim` is still the stream's current owner record. */
  async holds(fn: string, streamId: string, claim: Claim): Promise<boolean> {
    const current = await this.get(fn, streamId);
    return current !== null && current.revision === claim.revision;
  }

  /**
   * Forgets an ended stream's owner. Purges the key's subject in the bucket's stream rather
   * than deleting the key, so no delete marker stays behind per ended stream.
   */
  async release(fn: string, streamId: string): Promise<void> {
    const subject = `$KV.${this.#cluster.settings.names.owners}.${ownerKey(fn, streamId)}`;
    try {
      await this.#cluster.jsm.streams.purge(`KV_${this.#cluster.settings.names.owners}`, { filter: subject });
    } catch (err) {
      throw clusterError(`cannot release stream ${streamId} (${fn})`, err);
    }
  }
}
