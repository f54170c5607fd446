import { createServer } from "node:http";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { hostname } from "node:os";
import { sendJson } from "../gateway/http-util.js";
import { StreamfnMetrics } from "../metrics/metrics.js";
import { registerWorkPending, workPending } from "./cluster-metrics.js";
import { registerReadCounter, registerReadGauge } from "../metrics/read-metrics.js";
import { StreamfnError } from "../api/errors.js";
import type { ErrorRecord } from "../api/errors.js";
import type { EndReason, StreamFunctionOptions } from "../api/types.js";
import { Registry } from "../registry/registry.js";
import { SpareThreads } from "../instances/spare-threads.js";
import { Router } from "../router/router.js";
import type { EndRecord, OutputSink, StreamHandle, StreamTable } from "../router/stream-table.js";
import type { ClusterLogger } from "./connect.js";
import { positionOf } from "./event-log.js";
import { openCluster } from "./open-cluster.js";
import { onReconnect } from "./connect.js";
import type { ClusterHandle } from "./open-cluster.js";
import { OrderedFeed } from "./ordered-feed.js";
import type { FeedRecord } from "./ordered-feed.js";
import { FencedError } from "./output-log.js";
import type { OutputWriter } from "./output-log.js";
import type { WorkItem, WorkLoop } from "./work-queue.js";
import { WorkerHold, subscribeHolds } from "./output-hold.js";
import type { Subscription } from "@nats-io/transport-node";
import { ensureBuckets, eventKindOf, kBinaryOutputHeader, kEndReasonHeader, kEventSeqHeader, progressSubject, publishProgress } from "./wire.js";
import type { CatalogEntry, ClusterBuckets, WorkerStatus } from "./wire.js";
import { kWorkerStatusEveryMs } from "./wire.js";

/** One per process: every event read from the log is decoded through it. */
const kDecoder = new TextDecoder();

export interface ClusterWorkerOptions {
  nats: string;
  functionsDir: string;
  /** The work lease (ms): a worker silent this long loses its streams to another. */
  leaseMs?: number;
  /** This worker's name in owner records and logs (default `<host>-<pid>`). */
  name?: string;
  prefix?: string;
  storage?: "file" | "memory";
  defaults?: StreamFunctionOptions;
  overrides?: Record<string, StreamFunctionOptions>;
  cacheDir?: string;
  logger?: ClusterLogger;
  /** Serves GET /metrics, /v1/status and /healthz on this port (0 = any free port; unset = none). */
  port?: number;
  /** The address of that endpoint (default loopback). */
  host?: string;
  /** false: refuse functions that ask for the inline tier (`--no-inline`), as `serve` does. */
  allowInline?: boolean;
}

/** One stream this worker runs: the local router stream fed from the event log, writing to the output log. */
interface Run {
  item: WorkItem;
  fn: string;
  streamId: string;
  epoch: number;
  takeover: boolean;
  local: StreamHandle | undefined;
  feed: OrderedFeed | undefined;
  lost: boolean;
  /** Records read from the log, waiting for room in the local stream's inbox (bounded by the stream's maxEvents). */
  pending: FeedRecord[];
  paused: boolean;
  pushed: number;
  reported: number;
  progressSubject: string;
  /** Gateways whose sinks of this stream are backed up: the local stream's output sink reports itself backed up meanwhile. */
  hold: WorkerHold;
}

/** Outputs of one stream queued for the log before its handler is held. */
const kWriterBacklog = 64;

/** How often a worker tells gateways how far each stream's handler has consumed. */
const kProgressEveryMs = 20;

/**
 * `streamfn worker`: serves a directory's functions to the cluster. Pulls the streams queued
 * for each function as its pool has room, runs each on a local embedded router (the same
 * pools and sandboxes as `serve`), feeds it the stream's events from the log and writes its
 * outputs to the output log under a fence, so a worker that lost the stream cannot write.
 */
export class ClusterWorker {
  readonly name: string;
  readonly registry: Registry;
  readonly router: Router;
  readonly spares: SpareThreads;
  /** The router through the table contract (the handles it gives out are its own streams). */
  readonly #table: StreamTable;
  readonly #options: ClusterWorkerOptions;
  readonly #log: ClusterLogger;
  #cluster: ClusterHandle | undefined;
  #buckets: ClusterBuckets | undefined;
  readonly #loops = new Map<string, WorkLoop>();
  readonly #runs = new Map<string, Run>();
  #progressTimer: NodeJS.Timeout | undefined;
  #holds: Subscription | undefined;
  #statusTimer: NodeJS.Timeout | undefined;
  /** Streams this worker took over from another (a redelivered work item). */
  takeovers = 0;
  /** Streams this worker gave up because another took them over (fenced or lease lost). */
  fenced = 0;
  /** Events fed to streams taken over from another worker (the log read again from its start). */
  replayed = 0;
  readonly metrics: StreamfnMetrics;
  #http: Server | undefined;
  #closing: Promise<void> | undefined;

  private constructor(options: ClusterWorkerOptions) {
    this.#options = options;
    this.name = options.name ?? `${hostname()}-${process.pid}`;
    this.#log = options.logger ?? { info() {}, warn() {} };
    this.spares = new SpareThreads(1, options.defaults?.memoryMb ?? 256);
    // The metrics read router and registry state at scrape time, after both exist.
    this.metrics = new StreamfnMetrics({ liveStreams: () => this.router.live(), functions: () => this.registry.functions() });
    this.registry = new Registry({
      spares: this.spares,
      dir: options.functionsDir,
      cacheDir: options.cacheDir,
      defaults: options.defaults,
      overrides: options.overrides,
      observer: this.metrics.poolObserver,
      allowInline: options.allowInline,
    });
    // Ended ids are the cluster's to remember: a stream taken back over must open here again.
    this.router = new Router(this.registry, this.metrics.routerObserver, { endedRetentionMs: 0, outputRetention: 0 });
    this.#table = this.router;
  }

  static async start(options: ClusterWorkerOptions): Promise<ClusterWorker> {
    const w = new ClusterWorker(options);
    try {
      await w.#start();
    } catch (err) {
      await w.close();
      throw err;
    }
    return w;
  }

  async #start(): Promise<void> {
    const o = this.#options;
    const { deployed, failed } = await this.registry.loadAll();
    for (const f of failed) this.#log.warn({ file: f.file, code: f.error.code, message: f.error.message }, "deploy failed");
    this.#cluster = await openCluster({ servers: o.nats, name: `streamfn-worker-${this.name}`, prefix: o.prefix, storage: o.storage, logger: this.#log, ...(o.leaseMs ? { leaseMs: o.leaseMs } : {}) });
    this.#buckets = await ensureBuckets(this.#cluster.cluster);
    // Progress goes out on change only: after a reconnect, say it again (gateways may have missed it).
    onReconnect(this.#cluster.cluster.nc, () => {
      for (const run of this.#runs.values()) run.reported = -1;
    });
    this.#holds = subscribeHolds(this.#cluster.cluster.nc, this.#cluster.cluster, (m) => {
      const run = this.#runs.get(`${m.fn}\n${m.sid}`);
      if (run && !run.lost) run.hold.apply(m, Date.now());
    });
    for (const fn of deployed) {
      const pool = this.registry.current(fn);
      if (!pool) continue;
      const entry: CatalogEntry = { version: pool.version, options: pool.options, worker: this.name, updatedAt: Date.now() };
      await this.#buckets.catalog.put(fn, JSON.stringify(entry));
      const slots = pool.options.maxInstances * pool.options.concurrency;
      const loop = await this.#cluster.work.startLoop({ fn, slots, logger: this.#log, onItem: (item) => void this.#run(item) });
      this.#loops.set(fn, loop);
      this.#log.info({ fn, version: pool.version, slots }, "serving");
    }
    await this.#registerClusterMetrics();
    if (o.port !== undefined) await this.#listen(o.port, o.host ?? "127.0.0.1");
    this.#progressTimer = setInterval(() => this.#reportProgress(), kProgressEveryMs);
    this.#progressTimer.unref();
    await this.#publishStatus();
    this.#statusTimer = setInterval(() => void this.#publishStatus(), kWorkerStatusEveryMs);
    this.#statusTimer.unref();
  }

  async #registerClusterMetrics(): Promise<void> {
    const reg = await this.metrics.load();
    const c = this.#cluster!.cluster;
    const one = (n: number): [Record<string, string>, number][] => [[{ worker: this.name }, n]];
    registerReadCounter(reg, "streamfn_cluster_takeovers_total", "Streams this worker took over from another worker (a redelivered work item).", () => one(this.takeovers), ["worker"]);
    registerReadCounter(reg, "streamfn_cluster_streams_fenced_total", "Streams this worker lost to another (fenced, or its lease ran out): it wrote nothing more for them.", () => one(this.fenced), ["worker"]);
    registerReadCounter(reg, "streamfn_cluster_events_replayed_total", "Events fed from the event log to streams taken over from another worker.", () => one(this.replayed), ["worker"]);
    registerReadGauge(reg, "streamfn_cluster_streams_owned", "Streams this worker runs now, by function.", () => this.#ownedByFn(), ["function"]);
    registerReadGauge(reg, "streamfn_cluster_slots", "Work slots (maxInstances × concurrency) this worker offers, by function.", () => [...this.#loops.values()].map((l) => [{ function: l.fn }, l.active + l.free]), ["function"]);
    registerReadGauge(reg, "streamfn_cluster_slots_active", "Work slots holding a stream on this worker, by function.", () => [...this.#loops.values()].map((l) => [{ function: l.fn }, l.active]), ["function"]);
    registerWorkPending(reg, c, () => this.#loops.keys());
  }

  #ownedByFn(): [Record<string, string>, number][] {
    const n = new Map<string, number>();
    for (const fn of this.#loops.keys()) n.set(fn, 0);
    for (const r of this.#runs.values()) n.set(r.fn, (n.get(r.fn) ?? 0) + 1);
    return [...n].map(([fn, v]) => [{ function: fn }, v]);
  }

  async #listen(port: number, host: string): Promise<void> {
    const server = createServer((req, res) => {
      const path = (req.url ?? "/").split("?")[0];
      if (req.method !== "GET") return sendJson(res, 405, { error: { code: "METHOD_NOT_ALLOWED", message: `${req.method} is not served here` } });
      if (path === "/healthz") return sendJson(res, 200, { ok: true });
      if (path === "/v1/status") {
        void this.localStatus().then((s) => sendJson(res, 200, s), (err) => sendJson(res, 500, { error: { code: "INTERNAL", message: String(err) } }));
        return;
      }
      if (path === "/metrics") {
        void this.metrics.render().then(
          (text) => {
            res.writeHead(200, { "content-type": this.metrics.contentType, "content-length": Buffer.byteLength(text) });
            res.end(text);
          },
          (err) => sendJson(res, 500, { error: { code: "INTERNAL", message: String(err) } }),
        );
        return;
      }
      sendJson(res, 404, { error: { code: "NOT_FOUND", message: `no route ${path}` } });
    });
    this.#http = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
  }

  /** The URL of the worker's HTTP endpoint, if it serves one. */
  get url(): string | undefined {
    const a = this.#http?.address() as AddressInfo | null | undefined;
    if (!a) return undefined;
    return `http://${a.address.includes(":") ? `[${a.address}]` : a.address}:${a.port}`;
  }

  /** GET /v1/status of the worker's endpoint: the cluster record plus what only this process knows. */
  async localStatus(): Promise<Record<string, unknown>> {
    const base = this.status();
    const c = this.#cluster!.cluster;
    const functions = await Promise.all(
      base.functions.map(async (f) => {
        const pool = this.registry.current(f.name);
        const instances = pool ? [...pool.instances].map((i) => ({ id: i.id, state: i.state, streams: i.tenants.size, slots: i.concurrency })) : [];
        return { ...f, version: pool?.version ?? null, instances, workPending: (await workPending(c, f.name)) ?? null };
      }),
    );
    const memory = process.memoryUsage();
    return {
      mode: "cluster-worker",
      ...base,
      functions,
      fenced: this.fenced,
      replayed: this.replayed,
      process: { pid: process.pid, uptimeSeconds: Math.round(process.uptime() * 10) / 10, rssBytes: memory.rss, node: process.version },
    };
  }

  async #publishStatus(): Promise<void> {
    const status: WorkerStatus = { ...this.status(), updatedAt: Date.now() };
    await this.#buckets?.workers.put(this.name, JSON.stringify(status)).catch(() => {});
  }

  /** Functions served, with their slots and the streams running now. */
  status(): Omit<WorkerStatus, "updatedAt"> {
    return {
      worker: this.name,
      takeovers: this.takeovers,
      functions: [...this.#loops.values()].map((l) => ({ name: l.fn, slots: l.active + l.free, active: l.active })),
      streams: [...this.#runs.values()].map((r) => ({ function: r.fn, streamId: r.streamId, epoch: r.epoch, takeover: r.takeover })),
    };
  }

  async #run(item: WorkItem): Promise<void> {
    const c = this.#cluster!;
    const { fn, streamId } = item;
    const key = `${fn}\n${streamId}`;
    let claim;
    let writer: OutputWriter;
    try {
      claim = await c.owners.acquire(fn, streamId, this.name);
      if (!claim) {
        item.drop();
        return;
      }
      writer = await c.outputs.fence(fn, streamId, { worker: this.name, epoch: claim.epoch });
    } catch (err) {
      this.#log.warn({ fn, stream: streamId, err: String(err) }, "cannot take the stream");
      item.drop();
      return;
    }
    if (writer.ended) {
      await this.#finish(item, fn, streamId);
      return;
    }
    // The previous run of this stream here (if this worker stalled past its lease) is stale.
    this.#runs.get(key)?.local && this.#stopLocal(this.#runs.get(key)!);
    const takeover = claim.previous !== undefined || item.redelivered;
    if (takeover) this.takeovers++;
    const run: Run = {
      item,
      fn,
      streamId,
      epoch: claim.epoch,
      takeover,
      local: undefined,
      feed: undefined,
      lost: false,
      pending: [],
      paused: false,
      pushed: 0,
      reported: -1,
      progressSubject: progressSubject(c.cluster, fn, streamId),
      hold: new WorkerHold(),
    };
    this.#runs.set(key, run);
    const lose = (why: string): void => {
      if (run.lost) return;
      this.fenced++;
      this.#log.warn({ fn, stream: streamId, epoch: run.epoch, why }, "stream lost to another worker");
      this.#stopLocal(run);
    };
    item.keepLease(() => c.owners.holds(fn, streamId, claim), () => lose("lease"));
    this.#log.info({ fn, stream: streamId, epoch: claim.epoch, takeover, delivered: writer.delivered }, "stream taken");

    const pool = this.registry.current(fn);
    if (takeover && pool?.options.replay === false) {
      const end: EndRecord = {
        type: "end",
        status: "failed",
        reason: "error",
        events: 0,
        outputs: writer.delivered,
        error: { code: "STREAM_NOT_REPLAYABLE", message: `stream ${streamId} (${fn}) lost its worker and the function sets replay: false` },
      };
      try {
        await writer.end(JSON.stringify(end));
        await this.#finish(item, fn, streamId);
      } catch (err) {
        lose(String(err));
      }
      this.#runs.delete(key);
      return;
    }

    const onWriteError = (err: unknown): void => {
      if (err instanceof FencedError) lose("fenced");
      else {
        this.#log.warn({ fn, stream: streamId, err: String(err) }, "cannot write an output; giving the stream up");
        lose("write failed");
      }
    };
    const sink: OutputSink = {
      output: (n, json, bytes) => {
        if (run.lost || n <= writer.delivered) return;
        const p = bytes ? writer.write(n, bytes, { [kBinaryOutputHeader]: "1" }) : writer.write(n, json ?? "null");
        p.catch(onWriteError);
      },
      end: (record) => {
        if (run.lost) return;
        run.feed?.close();
        writer
          .end(JSON.stringify(record))
          .then(() => this.#finish(item, fn, streamId))
          .catch(onWriteError)
          .finally(() => {
            run.hold.clear();
            if (this.#runs.get(key) === run) this.#runs.delete(key);
          });
      },
      // Held while a gateway's sinks are backed up, and while the log is slower than the handler
      // (a bounded number of outputs waits to be stored: the handler, not this process, waits).
      backedUp: () => run.hold.held || writer.backlog >= kWriterBacklog,
      onceWritable: (cb) => {
        if (run.hold.held) run.hold.onceWritable(cb);
        else writer.onceBacklogAtMost(kWriterBacklog >> 1, cb);
      },
    };
    let local: StreamHandle | undefined;
    for (let attempt = 0; attempt < 50 && !local; attempt++) {
      try {
        local = await this.#table.open(fn, streamId, sink);
      } catch (err) {
        if (err instanceof StreamfnError && (err.code === "STREAM_ENDED" || err.code === "STREAM_BUSY")) {
          await new Promise((r) => setTimeout(r, 20));
          continue;
        }
        const e = err instanceof StreamfnError ? err : new StreamfnError("INTERNAL", String(err));
        sink.end({ type: "end", status: "failed", reason: "error", events: 0, outputs: 0, error: { code: e.code, message: e.message } });
        return;
      }
    }
    if (!local) {
      lose("the previous local run did not end");
      return;
    }
    run.local = local;
    this.#table.attachProducer(local, {
      pause: () => (run.paused = true),
      resume: () => {
        run.paused = false;
        this.#pump(run);
      },
    });
    run.feed = new OrderedFeed({
      nc: c.cluster.nc,
      jsm: c.cluster.jsm,
      stream: c.cluster.settings.names.events,
      subject: c.events.subject(fn, streamId),
      positionOf,
      from: 1,
      onRecord: (r) => {
        if (run.pending.length >= local.options.maxEvents + 2) {
          this.#failLocal(run, { code: "CLUSTER_ERROR", message: `stream ${streamId}: more events than maxEvents in the log` });
          return;
        }
        run.pending.push(r);
        this.#pump(run);
      },
      onError: (err) => this.#failLocal(run, { code: err.code, message: err.message }),
    });
    run.feed.start();
  }

  /** Hands queued log records to the local stream while its inbox has room. */
  #pump(run: Run): void {
    const s = run.local;
    if (!s || run.lost) return;
    while (run.pending.length > 0 && !run.paused && s.state !== "done") {
      const r = run.pending.shift()!;
      const kind = eventKindOf(r.headers);
      try {
        if (kind === "env" || kind === "json" || kind === "bin") {
          const seq = Number(r.headers?.get(kEventSeqHeader) ?? "");
          const seqArg = Number.isSafeInteger(seq) && seq > 0 ? seq : undefined;
          if (kind !== "bin") {
            // Not parsed here: the text goes to the instance as an envelope and is parsed there.
            const text = kDecoder.decode(r.data);
            this.#table.push(s, undefined, seqArg, false, r.data.byteLength, kind === "env" ? text : `{"data":${text}}`);
          } else {
            const copy = new Uint8Array(r.data.byteLength);
            copy.set(r.data);
            this.#table.push(s, copy.buffer, seqArg, true, r.data.byteLength);
          }
          run.pushed = r.position;
          if (run.takeover) this.replayed++;
        } else if (kind === "end") {
          this.#table.endInput(s, (r.headers?.get(kEndReasonHeader) || "client") as EndReason);
          run.pushed = r.position;
        } else if (kind === "cancel") {
          let error: ErrorRecord = { code: "STREAM_CANCELLED", message: "the stream was cancelled" };
          try {
            error = JSON.parse(kDecoder.decode(r.data)) as ErrorRecord;
          } catch {
            // keep the default
          }
          this.#table.fail(s, error);
        }
      } catch (err) {
        // A limit the gateway also checks (a late event after the end): the local table's answer stands.
        if (!(err instanceof StreamfnError)) throw err;
        run.pushed = r.position;
      }
    }
  }

  #reportProgress(): void {
    const nc = this.#cluster?.cluster.nc;
    if (!nc) return;
    const now = Date.now();
    for (const run of this.#runs.values()) {
      const s = run.local;
      if (!s || run.lost) continue;
      if (run.hold.held) run.hold.expire(now);
      // Events sent to the instance count as consumed, as in embedded mode: the router keeps up to its
      // instance window there and inboxLimit in its inbox, whose pause (not idle) the gateway mirrors.
      const consumed = Math.max(0, run.pushed - s.queued);
      if (consumed === run.reported) continue;
      run.reported = consumed;
      publishProgress(nc, run.progressSubject, { consumed });
    }
  }

  #failLocal(run: Run, error: ErrorRecord): void {
    if (run.local && run.local.state !== "done") this.#table.fail(run.local, error);
  }

  /** This worker lost the stream: its local run stops and writes nothing more. */
  #stopLocal(run: Run): void {
    run.lost = true;
    run.item.drop();
    run.feed?.close();
    run.pending.length = 0;
    run.hold.clear();
    if (run.local && run.local.state !== "done") this.#table.fail(run.local, { code: "STREAM_FENCED", message: "taken over by another worker" });
    const key = `${run.fn}\n${run.streamId}`;
    if (this.#runs.get(key) === run) this.#runs.delete(key);
  }

  /** The end record is stored: the work item leaves the queue, the events go, the owner record goes. */
  async #finish(item: WorkItem, fn: string, streamId: string): Promise<void> {
    const c = this.#cluster!;
    await item.done();
    await c.events.purge(fn, streamId).catch(() => {});
    await c.owners.release(fn, streamId).catch(() => {});
    this.#log.info({ fn, stream: streamId }, "stream done");
  }

  /** Stops pulling, drops the streams held (another worker takes them over after the lease), stops instances. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearInterval(this.#progressTimer);
      clearInterval(this.#statusTimer);
      this.#holds?.unsubscribe();
      this.#http?.closeAllConnections();
      this.#http?.close();
      await this.#buckets?.workers.delete(this.name).catch(() => {});
      for (const loop of this.#loops.values()) await loop.stop().catch(() => {});
      for (const run of [...this.#runs.values()]) this.#stopLocal(run);
      await this.router.close(0).catch(() => {});
      await this.registry.close().catch(() => {});
      await this.spares.close().catch(() => {});
      await this.#cluster?.close().catch(() => {});
    })();
    return this.#closing;
  }
}
