import type { ServerResponse } from "node:http";
import { StreamfnError } from "../api/errors.js";
import { kLatencyBoundsMs } from "../metrics/metrics.js";
import { kDurationBoundsMs } from "./sampler.js";
import type { DashboardSampler, Tick } from "./sampler.js";

/** Viewers at once; each costs one socket and the bytes of a tick a second. */
export const kMaxViewers = 64;
/** Unsent bytes a viewer may have before it is cut off (its EventSource reconnects). */
export const kMaxViewerBacklog = 1024 * 1024;

/**
 * `GET /v1/dashboard/feed`: the dashboard's push channel (server-sent events). A viewer gets
 * `hello` (the kept history) and then one `tick` a second. Every viewer gets the same tick,
 * serialized once; the sampler runs only while at least one viewer is connected.
 */
export class DashboardFeed {
  readonly #viewers = new Set<ServerResponse>();
  readonly #sampler: DashboardSampler;

  constructor(sampler: DashboardSampler) {
    this.#sampler = sampler;
  }

  get viewers(): number {
    return this.#viewers.size;
  }

  open(res: ServerResponse): void {
    if (this.#viewers.size >= kMaxViewers) {
      throw new StreamfnError("CAPACITY_EXCEEDED", `the dashboard already has ${kMaxViewers} viewers; retry later`, { retryAfterMs: 5_000 });
    }
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store", "x-accel-buffering": "no" });
    this.#viewers.add(res);
    res.once("close", () => this.#leave(res));
    if (!this.#sampler.running) this.#sampler.start((tick) => this.#broadcast(tick));
    const hello = {
      intervalMs: this.#sampler.intervalMs,
      historyLength: this.#sampler.historyLength,
      latencyBoundsMs: kLatencyBoundsMs,
      durationBoundsMs: kDurationBoundsMs,
      history: this.#sampler.history(),
    };
    // retry: how soon EventSource reconnects after the server cut a viewer off or restarted.
    res.write(`retry: 2000\nevent: hello\ndata: ${JSON.stringify(hello)}\n\n`);
    const last = this.#sampler.last;
    if (last) res.write(frame(last));
  }

  /** Ends every viewer's response (the server is closing) and stops the sampler. */
  close(): void {
    for (const res of [...this.#viewers]) res.end();
    this.#viewers.clear();
    this.#sampler.stop();
  }

  #broadcast(tick: Tick): void {
    const text = frame(tick);
    for (const res of this.#viewers) {
      // A viewer that does not read is not buffered for: it is cut off and reconnects.
      if (res.writableLength > kMaxViewerBacklog) res.destroy();
      else res.write(text);
    }
  }

  #leave(res: ServerResponse): void {
    if (!this.#viewers.delete(res)) return;
    if (this.#viewers.size === 0) this.#sampler.stop();
  }
}

function frame(tick: Tick): string {
  return `event: tick\ndata: ${JSON.stringify(tick)}\n\n`;
}
