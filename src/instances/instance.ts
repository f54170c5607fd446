import type { EventLoopUtilization } from "node:perf_hooks";
import type { ErrorRecord } from "../api/errors.js";
import type { EndReason, ResolvedOptions, StreamFunctionOptions } from "../api/types.js";
import type { StreamLogEntry } from "../router/stream-log.js";
import { kOutputWindow } from "../runtime/protocol.js";
import type { FromSandbox, ToSandbox } from "../runtime/protocol.js";
import type { Sandbox, SandboxExit } from "./sandbox.js";
import { createSandbox } from "./create-sandbox.js";
import type { SpareThreads } from "./spare-threads.js";

export type EventOp = Extract<ToSandbox, { k: "ev" }>;

/** Pending output credits of one stream that make a batch go without waiting for other traffic. */
const kAckFlushAt = kOutputWindow >> 1;
const kNoTransfer: ArrayBuffer[] = [];

/** The router's side of one stream bound to an instance slot. */
export interface SlotTenant {
  readonly sid: number;
  readonly streamId: string;
  /** The handler took `n` events. */
  onPull(n: number): void;
  /**
   * An output: its JSON text, or the bytes of a binary output. `eventAt` is the arrival stamp
   * of the event the handler held when it produced this output.
   */
  onOutput(data: string | Uint8Array, eventAt: number): void;
  /**
   * An output the sandbox produced but never posted, recovered as the instance went away; `n`
   * is its number in the stream (the router skips the ones it already has).
   */
  onUnsent?(n: number, data: string | Uint8Array, eventAt: number): void;
  /** A `ctx.log` line; `dropped`: lines the sandbox dropped (rate limit) before this one. */
  onLog?(entry: StreamLogEntry, dropped: number): void;
  /** The handler finished; `error` if it failed. Called at most once. `logsDropped`: lines dropped since the last one sent. */
  onDone(error: ErrorRecord | undefined, logsDropped?: number): void;
}

export type InstanceState = "starting" | "ready" | "stopping" | "stopped";

export interface InstanceEvents {
  ready(instance: Instance, options: StreamFunctionOptions): void;
  /** A slot came free (a stream finished on it). */
  slotFreed(instance: Instance): void;
  /** The instance is gone for good: stopped, crashed, recycled. Its tenants were already told. */
  gone(instance: Instance, exit: SandboxExit | undefined): void;
}

let nextInstanceId = 1;
const kUtilizationWindowMs = 100;
/** Instances get at least this long to load, whatever `unresponsiveMs` says. */
const kMinStartTimeoutMs = 10_000;

/**
 * One sandbox running one function version, with `concurrency` stream slots. Messages to the
 * sandbox are queued and posted once per event-loop turn. A heartbeat catches an event loop
 * stuck in user code: the sandbox is then recycled and its streams fail instead of hanging.
 */
export class Instance {
  readonly id = nextInstanceId++;
  readonly startedAt = performance.now();
  readyAt: number | undefined;
  state: InstanceState = "starting";
  readonly tenants = new Map<number, SlotTenant>();
  /** Streams bound here, including ones that are reserving a slot while the sandbox starts. */
  readonly concurrency: number;
  idleSince: number = performance.now();
  keepAliveTimer: NodeJS.Timeout | undefined;

  readonly #sandbox: Sandbox;
  readonly #events: InstanceEvents;
  readonly #unresponsiveMs: number;
  #ops: ToSandbox[] = [];
  readonly #acks = new Map<number, number>();
  #transfer: ArrayBuffer[] = [];
  #scheduled = false;
  #heartbeat: NodeJS.Timeout | undefined;
  #pingOutstandingSince = 0;
  /**
   * When a queued batch goes: at the next turn for a sandbox on another thread (one message
   * carries a whole turn's events), at the end of the current task for one on this thread.
   */
  readonly #later: (cb: () => void) => void;
  /** The sandbox shares this thread (Sandbox.sharesThread). */
  readonly #direct: boolean;

  constructor(
    spec: { bundlePath: string; functionName: string; options: ResolvedOptions; spares?: SpareThreads | undefined },
    events: InstanceEvents,
  ) {
    this.concurrency = spec.options.concurrency;
    this.#unresponsiveMs = spec.options.unresponsiveMs;
    this.#events = events;
    this.#sandbox = createSandbox(spec.options.sandbox, {
      bundlePath: spec.bundlePath,
      functionName: spec.functionName,
      memoryMb: spec.options.memoryMb,
      spares: spec.spares,
    });
    this.#direct = this.#sandbox.sharesThread === true;
    this.#later = this.#direct ? queueMicrotask : setImmediate;
    this.#sandbox.onBatch = (batch) => this.#onBatch(batch);
    this.#sandbox.onExit = (exit) => this.#die(this.state === "starting" ? { ...exit, code: "FUNCTION_LOAD_FAILED" } : exit);
    this.ready = new Promise<void>((resolve, reject) => {
      this.#settleReady = (err) => (err ? reject(err) : resolve());
    });
    this.ready.catch(() => {}); // observed by whoever awaits it; never an unhandled rejection
    // A module that hangs while loading would otherwise hold its streams forever: the
    // heartbeat only watches instances that are ready.
    const startLimit = Math.max(kMinStartTimeoutMs, this.#unresponsiveMs);
    this.#startTimer = setTimeout(() => {
      if (this.state !== "starting") return;
      this.#die({
        code: "FUNCTION_LOAD_FAILED",
        message: `the instance did not finish loading within ${startLimit} ms`,
      });
    }, startLimit);
    this.#startTimer.unref();
  }

  /** Settles when the instance is ready to run streams, or rejects if it went away first. */
  readonly ready: Promise<void>;
  #settleReady: (err?: Error) => void = () => {};
  #startTimer: NodeJS.Timeout | undefined;

  /**
   * How busy the sandbox's event loop was lately (0..1), sampled at most every 100 ms. A
   * CPU-bound function shows near 1 long before its streams start to queue.
   */
  get utilization(): number {
    if (this.state !== "ready") return 0;
    const now = performance.now();
    if (now - this.#eluAt >= kUtilizationWindowMs) {
      const total = this.#sandbox.eventLoopUtilization();
      this.#elu = this.#eluTotal ? this.#sandbox.eventLoopUtilization(this.#eluTotal).utilization : total.utilization;
      this.#eluTotal = total;
      this.#eluAt = now;
    }
    return this.#elu;
  }

  #elu = 0;
  #eluAt = 0;
  #eluTotal: EventLoopUtilization | undefined;

  get freeSlots(): number {
    return this.concurrency - this.tenants.size;
  }

  get coldStartMs(): number | undefined {
    return this.readyAt === undefined ? undefined : this.readyAt - this.startedAt;
  }

  attach(tenant: SlotTenant): void {
    this.tenants.set(tenant.sid, tenant);
    if (this.keepAliveTimer) {
      clearTimeout(this.keepAliveTimer);
      this.keepAliveTimer = undefined;
    }
    this.#queue({ k: "open", s: tenant.sid, id: tenant.streamId });
    this.#armHeartbeat();
  }

  /** Sends one event. A binary payload (an ArrayBuffer) is moved, not copied: the caller must not touch it again. */
  event(op: EventOp): void {
    if (this.#direct && this.#ops.length === 0) {
      // On this thread an event is handed over at once: it only queues for the handler (whose
      // `next()` settles in a later microtask), so no user code runs inside the caller.
      this.#sandbox.post([op], kNoTransfer);
      return;
    }
    if (op.b === 1) this.#transfer.push(op.d as ArrayBuffer);
    this.#queue(op);
  }

  endInput(sid: number, reason: EndReason): void {
    this.#queue({ k: "end", s: sid, r: reason });
  }

  /**
   * Output credits, summed per stream. They ride along with the next batch that goes anyway
   * (usually the stream's next event) and only force a message of their own once a stream has
   * half its output window waiting: a handler is held only at a full window, so it never waits
   * on them, and a stream with one event in flight costs one thread message per event, not two.
   */
  ackOutput(sid: number): void {
    const n = (this.#acks.get(sid) ?? 0) + 1;
    this.#acks.set(sid, n);
    if (n >= kAckFlushAt && !this.#scheduled) {
      this.#scheduled = true;
      this.#later(this.#flush);
    }
  }

  /** Gives up on a stream: its handler is aborted and its slot is free at once. */
  kill(sid: number, error: ErrorRecord): void {
    if (!this.tenants.delete(sid)) return;
    this.#acks.delete(sid);
    this.#queue({ k: "kill", s: sid, e: error });
    this.#slotFreed();
  }

  /** Stops the sandbox. Tenants still here are failed with `error`. */
  async stop(error: ErrorRecord = { code: "SHUTTING_DOWN", message: "the instance was stopped" }): Promise<void> {
    if (this.state === "stopped" || this.state === "stopping") return;
    this.state = "stopping";
    this.#failTenants(error);
    this.#clearTimers();
    await this.#sandbox.terminate();
    this.state = "stopped";
    this.#events.gone(this, undefined);
  }

  #queue(op: ToSandbox): void {
    this.#ops.push(op);
    if (this.#scheduled) return;
    this.#scheduled = true;
    this.#later(this.#flush);
  }

  readonly #flush = (): void => {
    this.#scheduled = false;
    if (this.#acks.size > 0) {
      for (const [s, n] of this.#acks) this.#ops.push({ k: "ack", s, n });
      this.#acks.clear();
    }
    if (this.#ops.length === 0) return;
    const ops = this.#ops;
    const transfer = this.#transfer;
    this.#ops = [];
    this.#transfer = [];
    this.#sandbox.post(ops, transfer);
  };

  #onBatch(batch: FromSandbox[]): void {
    this.#pingOutstandingSince = 0;
    for (const op of batch) {
      switch (op.k) {
        case "pull":
          this.tenants.get(op.s)?.onPull(op.n);
          break;
        case "out":
          this.tenants.get(op.s)?.onOutput(op.d, op.t);
          break;
        case "log":
          this.tenants.get(op.s)?.onLog?.({ time: op.t, level: op.l, msg: op.m }, op.x ?? 0);
          break;
        case "done": {
          const tenant = this.tenants.get(op.s);
          if (!tenant) break;
          this.tenants.delete(op.s);
          this.#acks.delete(op.s);
          tenant.onDone(op.e, op.x);
          this.#slotFreed();
          break;
        }
        case "ready":
          if (this.state !== "starting") break;
          clearTimeout(this.#startTimer);
          this.state = "ready";
          this.readyAt = performance.now();
          // Utilization counts from here: loading the module kept the loop busy, serving has not yet.
          this.#eluTotal = this.#sandbox.eventLoopUtilization();
          this.#eluAt = this.readyAt;
          this.#settleReady();
          this.#events.ready(this, op.options);
          break;
        case "pong":
          break;
      }
    }
  }

  #slotFreed(): void {
    if (this.tenants.size === 0) this.idleSince = performance.now();
    this.#events.slotFreed(this);
  }

  #armHeartbeat(): void {
    if (this.#heartbeat) return;
    const every = Math.max(10, Math.floor(this.#unresponsiveMs / 4));
    this.#heartbeat = setInterval(() => {
      if (this.state !== "ready") return;
      const now = performance.now();
      if (this.#pingOutstandingSince === 0) {
        if (this.tenants.size === 0) {
          clearInterval(this.#heartbeat);
          this.#heartbeat = undefined;
          return;
        }
        this.#pingOutstandingSince = now;
        this.#queue({ k: "ping", t: now });
      } else if (now - this.#pingOutstandingSince > this.#unresponsiveMs) {
        this.#die({
          code: "INSTANCE_CRASHED",
          message: `the instance did not respond for ${this.#unresponsiveMs} ms (a handler blocking its event loop?) and was recycled`,
        }, "INSTANCE_UNRESPONSIVE");
      }
    }, every);
    this.#heartbeat.unref();
  }

  #die(exit: SandboxExit, code: ErrorRecord["code"] = exit.code): void {
    if (this.state === "stopped" || this.state === "stopping") return;
    this.state = "stopping";
    this.#failTenants({ code, message: exit.message });
    this.#clearTimers();
    void this.#sandbox.terminate().then(() => {
      this.state = "stopped";
      this.#events.gone(this, exit);
    });
  }

  #failTenants(error: ErrorRecord): void {
    // What the handlers produced before the end still reaches their producers, in order.
    if (this.tenants.size > 0) {
      for (const r of this.#sandbox.unsent()) this.tenants.get(r.s)?.onUnsent?.(r.n, r.d, r.t);
    }
    const tenants = [...this.tenants.values()];
    this.tenants.clear();
    for (const t of tenants) t.onDone(error);
  }

  #clearTimers(): void {
    clearTimeout(this.#startTimer);
    this.#settleReady(new Error("the instance stopped before it was ready"));
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
    if (this.keepAliveTimer) clearTimeout(this.keepAliveTimer);
    this.keepAliveTimer = undefined;
  }
}
