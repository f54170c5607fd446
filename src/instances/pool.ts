import { StreamfnError } from "../api/errors.js";
import type { ResolvedOptions, StreamFunctionOptions } from "../api/types.js";
import { Instance } from "./instance.js";
import type { SlotTenant } from "./instance.js";
import type { SandboxExit } from "./sandbox.js";
import type { SpareThreads } from "./spare-threads.js";

/** Event-loop utilization above which an instance takes no new streams while another can start. */
const kBusyUtilization = 0.9;

/** Fullest first; among equals a ready instance over one still starting. */
function fuller(i: Instance, than: Instance | undefined): boolean {
  if (!than) return true;
  if (i.tenants.size !== than.tenants.size) return i.tenants.size > than.tenants.size;
  return i.state === "ready" && than.state !== "ready";
}

/** A stream waiting for a slot. `bind` is called once a slot is its own. */
export interface SlotRequest {
  tenant: SlotTenant;
  bind(instance: Instance, cold: boolean): void;
  /** The wait ended without a slot (pool stopped, or its instances could not start). */
  reject(error: StreamfnError): void;
  /**
   * The version this request waited for was replaced before a slot came free. Returns true if
   * the request found a place elsewhere (the router moves it to the new version).
   */
  replaced?(): boolean;
}

export interface PoolObserver {
  coldStart?(pool: FunctionPool, ms: number): void;
  instanceGone?(pool: FunctionPool, instance: Instance, exit: SandboxExit | undefined): void;
}

export interface PoolStats {
  instances: number;
  startingInstances: number;
  slotsInUse: number;
  slotsTotal: number;
  queuedStreams: number;
  coldStarts: number;
  draining: boolean;
}

/**
 * The instances of one function version. A new stream takes a slot on the fullest instance
 * with room (so lightly used instances empty out and can stop), else starts a new instance
 * up to `maxInstances`, else waits in a bounded queue, else is refused.
 */
export class FunctionPool {
  readonly instances = new Set<Instance>();
  /** When this version was deployed (ms since the epoch). */
  readonly createdAt = Date.now();
  readonly #queue: SlotRequest[] = [];
  #draining = false;
  coldStarts = 0;
  /** Called when a draining pool has stopped its last instance. */
  onDrained: (() => void) | undefined;

  constructor(
    readonly functionName: string,
    readonly version: string,
    readonly bundlePath: string,
    readonly options: ResolvedOptions,
    readonly observer: PoolObserver = {},
    readonly spares?: SpareThreads,
  ) {}

  get draining(): boolean {
    return this.#draining;
  }

  /** Starts `minInstances`; resolves once they are ready (rejects if one fails to load). */
  async warm(): Promise<void> {
    const starting: Promise<void>[] = [];
    while (this.instances.size < this.options.minInstances) starting.push(this.#ready(this.#start()));
    await Promise.all(starting);
  }

  acquire(request: SlotRequest): void {
    if (this.#draining) throw new StreamfnError("SHUTTING_DOWN", `version ${this.version} of ${this.functionName} is draining`);
    const instance = this.#place();
    if (instance) {
      this.#bind(instance, request, instance.state === "starting");
      return;
    }
    if (this.instances.size < this.options.maxInstances) {
      this.#bind(this.#start(), request, true);
      return;
    }
    if (this.#queue.length < this.options.maxQueuedStreams) {
      this.#queue.push(request);
      return;
    }
    throw new StreamfnError(
      "CAPACITY_EXCEEDED",
      `${this.functionName}: all ${this.options.maxInstances * this.options.concurrency} slots are busy and ` +
        `${this.options.maxQueuedStreams} streams are already waiting; retry later`,
      { retryAfterMs: 1000 },
    );
  }

  /** Withdraws a queued request (its producer went away before it got a slot). */
  cancel(request: SlotRequest): boolean {
    const i = this.#queue.indexOf(request);
    if (i < 0) return false;
    this.#queue.splice(i, 1);
    return true;
  }

  stats(): PoolStats {
    let slotsInUse = 0;
    let starting = 0;
    for (const i of this.instances) {
      slotsInUse += i.tenants.size;
      if (i.state === "starting") starting++;
    }
    return {
      instances: this.instances.size,
      startingInstances: starting,
      slotsInUse,
      slotsTotal: this.instances.size * this.options.concurrency,
      queuedStreams: this.#queue.length,
      coldStarts: this.coldStarts,
      draining: this.#draining,
    };
  }

  /** No new streams; instances stop as their streams finish. */
  drain(): void {
    if (this.#draining) return;
    this.#draining = true;
    for (const r of this.#queue.splice(0)) {
      if (r.replaced?.()) continue;
      r.reject(new StreamfnError("SHUTTING_DOWN", `version ${this.version} of ${this.functionName} was replaced`));
    }
    for (const i of [...this.instances]) if (i.tenants.size === 0) void i.stop();
    this.#checkDrained();
  }

  /** Stops every instance now; streams still running fail with SHUTTING_DOWN. */
  async close(): Promise<void> {
    this.#draining = true;
    for (const r of this.#queue.splice(0)) r.reject(new StreamfnError("SHUTTING_DOWN", "the server is shutting down"));
    await Promise.all([...this.instances].map((i) => i.stop({ code: "SHUTTING_DOWN", message: "the server is shutting down" })));
  }

  /**
   * The fullest instance with room (packing), skipping instances whose event loop is
   * saturated: a CPU-bound function then spreads to a new instance (another core) before its
   * streams queue. With no room elsewhere and no instance left to start, a busy one still serves.
   */
  #place(): Instance | undefined {
    let best: Instance | undefined;
    let cool: Instance | undefined;
    for (const i of this.instances) {
      if (i.freeSlots <= 0 || (i.state !== "ready" && i.state !== "starting")) continue;
      if (fuller(i, best)) best = i;
      if (i.utilization < kBusyUtilization && fuller(i, cool)) cool = i;
    }
    if (cool || !best) return cool;
    return this.instances.size < this.options.maxInstances && !this.#draining ? undefined : best;
  }

  #bind(instance: Instance, request: SlotRequest, cold: boolean): void {
    instance.attach(request.tenant);
    request.bind(instance, cold);
  }

  #start(): Instance {
    const instance = new Instance(
      { bundlePath: this.bundlePath, functionName: this.functionName, options: this.options, spares: this.spares },
      {
        ready: (i, _options: StreamFunctionOptions) => {
          this.coldStarts++;
          this.observer.coldStart?.(this, i.coldStartMs ?? 0);
          this.#afterSlotChange(i);
        },
        slotFreed: (i) => this.#afterSlotChange(i),
        gone: (i, exit) => {
          this.instances.delete(i);
          this.observer.instanceGone?.(this, i, exit);
          // Streams queued behind an instance that never came up would wait forever.
          if (exit?.code === "FUNCTION_LOAD_FAILED") {
            for (const r of this.#queue.splice(0)) {
              r.reject(new StreamfnError("FUNCTION_LOAD_FAILED", exit.message));
            }
          } else {
            this.#serveQueue();
          }
          // A version that cannot load is not restarted in a loop; the next stream tries again.
          if (!this.#draining && exit?.code !== "FUNCTION_LOAD_FAILED") this.#keepMinimum();
          this.#checkDrained();
        },
      },
    );
    this.instances.add(instance);
    return instance;
  }

  async #ready(instance: Instance): Promise<void> {
    try {
      await instance.ready;
    } catch {
      throw new StreamfnError("FUNCTION_LOAD_FAILED", `${this.functionName}: an instance failed to start`);
    }
  }

  #afterSlotChange(instance: Instance): void {
    this.#serveQueue();
    if (instance.tenants.size > 0 || instance.state !== "ready") return;
    if (this.#draining) {
      void instance.stop();
      return;
    }
    this.#armKeepAlive(instance);
  }

  #serveQueue(): void {
    while (this.#queue.length > 0) {
      let instance = this.#place();
      if (!instance && this.instances.size < this.options.maxInstances && !this.#draining) instance = this.#start();
      if (!instance) return;
      const request = this.#queue.shift()!;
      this.#bind(instance, request, instance.state === "starting");
    }
  }

  #armKeepAlive(instance: Instance): void {
    if (instance.keepAliveTimer) clearTimeout(instance.keepAliveTimer);
    instance.keepAliveTimer = setTimeout(() => {
      instance.keepAliveTimer = undefined;
      if (instance.tenants.size > 0 || instance.state !== "ready") return;
      // minInstances stay warm: stop only the surplus. Count only instances that are not
      // already stopping: idle instances' timers fire together, and counting the ones stopped
      // a moment ago would stop them all, then cold-start a replacement.
      if (this.#liveInstances() <= this.options.minInstances) return;
      void instance.stop();
    }, this.options.keepAliveMs);
    instance.keepAliveTimer.unref();
  }

  #keepMinimum(): void {
    while (this.#liveInstances() < this.options.minInstances) {
      const i = this.#start();
      i.idleSince = performance.now();
    }
  }

  #liveInstances(): number {
    let n = 0;
    for (const i of this.instances) if (i.state === "starting" || i.state === "ready") n++;
    return n;
  }

  #checkDrained(): void {
    if (this.#draining && this.instances.size === 0) this.onDrained?.();
  }
}
