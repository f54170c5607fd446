import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Cluster } from "./ensure-cluster.js";
import type { OutputSink } from "../router/stream-table.js";

/**
 * Output backpressure across processes. In embedded mode a sink whose socket backs up holds
 * the handler (its output credits wait for the socket to drain). In cluster mode the sockets
 * are on a gateway and the handler on a worker, so the gateway tells the owning worker when its
 * sinks of a stream back up and when they drain, and the worker's sink reports itself backed
 * up meanwhile: the handler is held by the same router code as in embedded mode.
 *
 * Messages go only on a change of state, so a stream that keeps up costs nothing. A hold is
 * refreshed while it lasts and expires on the worker without a refresh: a gateway that dies
 * holding cannot hold a handler for ever, and a worker that takes a stream over learns of a
 * hold within one refresh.
 */

/** `{ fn, sid, gw, hold }` on `<root>.sfn.hold.<fn>.<sid>`: gateway `gw` holds (or releases) the stream. */
export interface HoldMessage {
  fn: string;
  sid: string;
  gw: string;
  hold: boolean;
}

export const kHoldRefreshMs = 1000;
/** A hold not refreshed for this long is dropped (a gateway that died holding). */
export const kHoldTtlMs = 3500;

/** One subject for every stream: holds are rare, and a worker then needs one subscription, not one per stream. */
export function holdSubject(cluster: Cluster): string {
  return cluster.settings.names.eventRoot.replace(/sfn\.ev$/, "sfn.hold");
}

/**
 * The gateway side for one stream: call `check()` after relaying outputs and whenever a sink
 * leaves; it signals the owning worker on a change.
 */
export class GatewayHold {
  #holding = false;
  #timer: NodeJS.Timeout | undefined;
  #waitingOn: OutputSink | undefined;
  /** Outputs relayed while the stream's sinks were backed up (what the handler is held for). */
  heldOutputs = 0;

  constructor(
    readonly nc: NatsConnection,
    readonly subject: string,
    readonly msg: Omit<HoldMessage, "hold">,
    readonly sinks: () => Iterable<OutputSink>,
  ) {}

  get holding(): boolean {
    return this.#holding;
  }

  check(): void {
    let backed: OutputSink | undefined;
    for (const k of this.sinks()) {
      if (k.backedUp?.()) {
        backed = k;
        break;
      }
    }
    if (backed === undefined) {
      if (this.#holding) this.release();
      return;
    }
    if (!this.#holding) {
      this.#holding = true;
      this.#send(true);
      this.#timer = setInterval(() => this.#send(true), kHoldRefreshMs);
      this.#timer.unref();
    }
    if (this.#waitingOn !== backed && backed.onceWritable) {
      this.#waitingOn = backed;
      backed.onceWritable(() => {
        if (this.#waitingOn === backed) this.#waitingOn = undefined;
        this.check();
      });
    }
  }

  /** Lets the worker's handler go on (the sinks drained, left, or the stream is done here). */
  release(): void {
    if (!this.#holding) return;
    this.#holding = false;
    this.heldOutputs = 0;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#send(false);
  }

  #send(hold: boolean): void {
    try {
      this.nc.publish(this.subject, JSON.stringify({ ...this.msg, hold } satisfies HoldMessage));
    } catch {
      // A closed connection: the worker's copy of the hold expires by itself.
    }
  }
}

/** The worker side for one stream: what its output sink reports as `backedUp()` / `onceWritable()`. */
export class WorkerHold {
  /** Gateways holding the stream, with when each hold expires. */
  readonly #by = new Map<string, number>();
  #writable: (() => void)[] = [];

  get held(): boolean {
    return this.#by.size > 0;
  }

  onceWritable(cb: () => void): void {
    if (this.#by.size === 0) cb();
    else this.#writable.push(cb);
  }

  apply(m: HoldMessage, now: number): void {
    if (m.hold) this.#by.set(m.gw, now + kHoldTtlMs);
    else this.#by.delete(m.gw);
    this.#wake();
  }

  /** Drops holds no gateway refreshed in time. */
  expire(now: number): void {
    for (const [gw, until] of this.#by) if (until <= now) this.#by.delete(gw);
    this.#wake();
  }

  /** The stream left this worker: nothing may wait on it any more. */
  clear(): void {
    this.#by.clear();
    this.#wake();
  }

  #wake(): void {
    if (this.#by.size > 0 || this.#writable.length === 0) return;
    const cbs = this.#writable;
    this.#writable = [];
    for (const cb of cbs) cb();
  }
}

/** Subscribes a worker to every hold message; `onHold` finds the run (or ignores a stream it does not own). */
export function subscribeHolds(nc: NatsConnection, cluster: Cluster, onHold: (m: HoldMessage) => void): Subscription {
  return nc.subscribe(holdSubject(cluster), {
    callback: (err, msg) => {
      if (err) return;
      try {
        const m = msg.json<HoldMessage>();
        if (typeof m.fn === "string" && typeof m.sid === "string" && typeof m.gw === "string" && typeof m.hold === "boolean") onHold(m);
      } catch {
        // not a hold message
      }
    },
  });
}
