import { jetstream } from "@nats-io/jetstream";
import type { Consumer, JetStreamClient, JsMsg } from "@nats-io/jetstream";
import type { Cluster } from "./ensure-cluster.js";
import { ensureWorkConsumer } from "./ensure-cluster.js";
import { workSubject } from "./names.js";
import { clusterError } from "./nats-errors.js";
import type { ClusterLogger } from "./connect.js";

export interface OpenItem {
  fn: string;
  streamId: string;
  openedAt: number;
}

/**
 * One stream's work item as one worker holds it: un-acked for the stream's whole life. The
 * lease keeper touches it (`working()`) every lease/3; a worker that dies or stalls past the
 * lease stops touching it and JetStream hands it to another worker (the takeover trigger).
 */
export class WorkItem {
  readonly fn: string;
  readonly streamId: string;
  readonly openedAt: number;
  /** A previous holder lost it (died, stalled, or was fenced): this worker takes over. */
  readonly redelivered: boolean;
  readonly deliveryCount: number;
  #timer: NodeJS.Timeout | undefined;
  #finished = false;
  #onLost: (() => void) | undefined;
  readonly #onFinish: () => void;

  constructor(
    private readonly msg: JsMsg,
    item: OpenItem,
    private readonly leaseMs: number,
    onFinish: () => void,
  ) {
    this.fn = item.fn;
    this.streamId = item.streamId;
    this.openedAt = item.openedAt;
    this.redelivered = msg.redelivered;
    this.deliveryCount = msg.info.deliveryCount;
    this.#onFinish = onFinish;
  }

  get finished(): boolean {
    return this.#finished;
  }

  /**
   * Renews the lease every lease/3 while `stillOwner` says yes. Checking ownership before
   * each renewal matters: a worker that was paused past its lease and woke up must not keep
   * its successor's delivery alive (JetStream counts progress by stream sequence, not by
   * delivery), or the successor's death would never be noticed.
   */
  keepLease(stillOwner: () => Promise<boolean>, onLost: () => void): void {
    this.#onLost = onLost;
    const tick = async (): Promise<void> => {
      if (this.#finished) return;
      let mine = false;
      try {
        mine = await stillOwner();
      } catch {
        // Cluster unreachable: do not renew on a guess; the lease runs out if this lasts.
        this.#timer = setTimeout(() => void tick(), Math.max(100, Math.floor(this.leaseMs / 6)));
        return;
      }
      if (this.#finished) return;
      if (!mine) {
        this.drop();
        onLost();
        return;
      }
      this.msg.working();
      this.#timer = setTimeout(() => void tick(), Math.max(100, Math.floor(this.leaseMs / 3)));
    };
    this.msg.working();
    this.#timer = setTimeout(() => void tick(), Math.max(100, Math.floor(this.leaseMs / 3)));
  }

  /** The stream ended (its end record is stored): the item leaves the queue. */
  async done(): Promise<void> {
    if (this.#finish()) await this.msg.ackAck().catch((err: unknown) => Promise.reject(clusterError(`cannot ack the work item of ${this.streamId}`, err)));
  }

  /**
   * Stops renewing without acking: this worker lost the stream (fenced) or is shutting down,
   * and the item must go to another worker once the lease runs out.
   */
  drop(): void {
    this.#finish();
  }

  /**
   * The same stream was delivered to this worker again: this holder's lease ran out (the
   * process stalled) and the new delivery supersedes it. Stops renewing, tells the holder.
   */
  supersede(): void {
    if (!this.#finish()) return;
    this.#onLost?.();
  }

  /** Gives the item back now (shutting down before it was started). */
  release(): void {
    if (this.#finish()) this.msg.nak();
  }

  #finish(): boolean {
    if (this.#finished) return false;
    this.#finished = true;
    clearTimeout(this.#timer);
    this.#onFinish();
    return true;
  }
}

export interface WorkLoopOptions {
  fn: string;
  /** Streams of this function this worker can run at once. */
  slots: number;
  onItem(item: WorkItem): void;
  logger?: ClusterLogger;
  /** How long one pull request waits on the server for items. */
  fetchExpiresMs?: number;
}

/**
 * A worker's pull loop for one function: asks the function's shared durable consumer for as
 * many items as it has free slots, and for none while it is full, so streams go to workers
 * with room (load balancing) and pile up in the queue, not in a worker (backpressure).
 */
export class WorkLoop {
  readonly fn: string;
  #active = 0;
  #running = true;
  #wake: (() => void) | undefined;
  #batch: { stop(err?: Error): void } | undefined;
  readonly #held = new Map<string, WorkItem>();
  readonly #done: Promise<void>;

  constructor(
    private readonly consumer: Consumer,
    private readonly leaseMs: number,
    private readonly options: WorkLoopOptions,
  ) {
    this.fn = options.fn;
    this.#done = this.#loop();
  }

  get active(): number {
    return this.#active;
  }

  get free(): number {
    return Math.max(0, this.options.slots - this.#active);
  }

  async #loop(): Promise<void> {
    while (this.#running) {
      const free = this.free;
      if (free === 0) {
        await new Promise<void>((resolve) => (this.#wake = resolve));
        continue;
      }
      try {
        const batch = await this.consumer.fetch({ max_messages: free, expires: this.options.fetchExpiresMs ?? 2_000 });
        this.#batch = batch;
        for await (const msg of batch) {
          if (!this.#running) {
            msg.nak();
            continue;
          }
          let item: OpenItem;
          try {
            item = msg.json<OpenItem>();
          } catch {
            msg.term(); // not ours: never redeliver it
            continue;
          }
          const key = `${item.fn}/${item.streamId}`;
          // Redelivered to the worker that still holds it (it stalled past its lease): the
          // old run is stale and gives way to the new delivery, which takes the stream over.
          this.#held.get(key)?.supersede();
          this.#active++;
          const w = new WorkItem(msg, item, this.leaseMs, () => {
            if (this.#held.get(key) === w) this.#held.delete(key);
            this.#active--;
            this.#wake?.();
            this.#wake = undefined;
          });
          this.#held.set(key, w);
          try {
            this.options.onItem(w);
          } catch (err) {
            this.options.logger?.warn({ err: String(err), stream: item.streamId }, "work item handler failed");
          }
        }
      } catch (err) {
        if (!this.#running) break;
        this.options.logger?.warn({ fn: this.fn, err: err instanceof Error ? err.message : String(err) }, "work fetch failed; retrying");
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  /** Stops pulling; items already held stay held (the caller drops or finishes them). */
  async stop(): Promise<void> {
    this.#running = false;
    this.#wake?.();
    this.#batch?.stop();
    await this.#done;
  }
}

/** Publishing open items (gateways) and pulling them (workers). */
export class WorkQueue {
  readonly #cluster: Cluster;
  readonly #js: JetStreamClient;
  readonly #consumers = new Set<string>();

  constructor(cluster: Cluster) {
    this.#cluster = cluster;
    this.#js = jetstream(cluster.nc);
  }

  /** One item per opened stream; a retried open (same stream) is dropped by the server's dedup. */
  async publishOpen(fn: string, streamId: string): Promise<void> {
    // Created on the function's first open (once per process): consumers stay one per function.
    if (!this.#consumers.has(fn)) {
      await ensureWorkConsumer(this.#cluster, fn, false);
      this.#consumers.add(fn);
    }
    const item: OpenItem = { fn, streamId, openedAt: Date.now() };
    try {
      await this.#js.publish(workSubject(this.#cluster.settings.names, fn), JSON.stringify(item), { msgID: `open/${fn}/${streamId}` });
    } catch (err) {
      throw clusterError(`cannot queue stream ${streamId} (${fn}) for a worker`, err);
    }
  }

  async startLoop(options: WorkLoopOptions): Promise<WorkLoop> {
    const name = await ensureWorkConsumer(this.#cluster, options.fn);
    let consumer: Consumer;
    try {
      consumer = await this.#js.consumers.get(this.#cluster.settings.names.work, name);
    } catch (err) {
      throw clusterError(`cannot bind to work consumer ${name}`, err);
    }
    return new WorkLoop(consumer, this.#cluster.settings.leaseMs, options);
  }
}
