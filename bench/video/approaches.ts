// The four ways of running the same per-frame code over the same clips.
import { Agent, request } from "node:http";
import { join } from "node:path";
import type { ClipSummary, FrameResult } from "../../examples/video/lib/analysis.js";
import type { DecodedClip } from "../../examples/video/lib/ffmpeg.js";
import { frameReady, newClipRun, streamClip } from "../../examples/video/lib/producer.js";
import type { ClipRun } from "../../examples/video/lib/producer.js";
import { joinFrames } from "./faas-functions.js";
import type { ProcessMeter } from "./proc-meter.js";
import { FaasService, kRepoRoot, spawnReady, startRedis, stopChild } from "./services.js";
import type { Spawned } from "./services.js";

export interface ApproachOptions {
  keepAliveMs: number;
  realtime: boolean;
  meter: ProcessMeter;
}

export interface ColdStarts {
  count: number;
  totalMs: number;
}

function coldStartsOf(times: readonly number[]): ColdStarts {
  return { count: times.length, totalMs: times.reduce((a, b) => a + b, 0) };
}

export interface Approach {
  readonly name: string;
  readonly title: string;
  /** Starts what must run before the first clip; excluded from the measured window. */
  setup(): Promise<void>;
  runClip(clip: DecodedClip): Promise<ClipRun>;
  /** Instances started during the workload, and the time they took in all (ms). */
  coldStarts(): Promise<ColdStarts>;
  /** What stays up while no clip plays, in words. */
  idleHolds(): string;
  teardown(): Promise<void>;
}

const kFaasSource = join(kRepoRoot, "dist/bench/video/faas-functions.js");
const agent = new Agent({ keepAlive: true, maxSockets: 256 });

function post(url: string, headers: Record<string, string>, body: Uint8Array): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "POST", agent, headers: { "content-type": "application/octet-stream", "content-length": String(body.byteLength), ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString();
        if (res.statusCode !== 200) reject(new Error(`${url}: ${res.statusCode} ${text.slice(0, 500)}`));
        else resolve(JSON.parse(text));
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

const clipHeader = (clip: DecodedClip, runId: string): string =>
  JSON.stringify({ clip: `${clip.name}-${runId}`, fps: clip.fps, width: clip.width, height: clip.height, format: clip.format, frames: clip.frames.length });

/** Summaries name the clip as the producer did; strip the per-run suffix again. */
function ownName(summary: ClipSummary, clip: DecodedClip): ClipSummary {
  return { ...summary, clip: clip.name };
}

export class StreamfnApproach implements Approach {
  readonly name: string;
  readonly title: string;
  #server: Spawned | undefined;
  #url = "";
  #coldBefore: ColdStarts = { count: 0, totalMs: 0 };
  #runId = Date.now().toString(36);
  /** `inline`: the function runs on the inline tier (the server's own thread) instead of a worker thread. */
  constructor(
    readonly o: ApproachOptions,
    readonly tier: "thread" | "inline" = "thread",
  ) {
    this.name = tier === "inline" ? "streamfn-inline" : "streamfn";
    this.title = tier === "inline" ? "stream functions, inline tier" : "stream functions (this platform)";
  }

  async setup(): Promise<void> {
    this.#server = await spawnReady(process.execPath, ["dist/src/cli/main.js", "serve", "examples/video/functions", "--port", "0", "--set", `video-analyzer.keepAliveMs=${this.o.keepAliveMs}`, ...(this.tier === "inline" ? ["--set", "video-analyzer.sandbox=inline"] : [])], /listening on (http:\/\/\S+) \(/);
    this.#url = this.#server.match[1]!;
    this.o.meter.track(this.#server.pid, "streamfn server", true);
    // Read once before and once after the clips, never during them: a poll while clips play
    // costs the producers' process (which timestamps every result) more than it costs the server.
    this.#coldBefore = await this.#coldStartTotals();
  }

  async runClip(clip: DecodedClip): Promise<ClipRun> {
    const run = await streamClip(clip, { url: `${this.#url.replace(/^http/, "ws")}/v1/functions/video-analyzer/streams/${clip.name}-${this.#runId}`, realtime: this.o.realtime, retryForMs: 60_000 });
    run.summary = ownName(run.summary!, clip);
    return run;
  }

  async coldStarts(): Promise<ColdStarts> {
    const now = await this.#coldStartTotals();
    return { count: now.count - this.#coldBefore.count, totalMs: now.totalMs - this.#coldBefore.totalMs };
  }

  idleHolds(): string {
    return "the platform process (gateway, router); no function instance";
  }

  async teardown(): Promise<void> {
    if (!this.#server) return;
    this.o.meter.retire(this.#server.pid);
    await stopChild(this.#server.child, 10_000);
  }

  /** The server's cold-start histogram (count and sum) for the video function, from /metrics. */
  async #coldStartTotals(): Promise<ColdStarts> {
    const text = await (await fetch(`${this.#url}/metrics`)).text();
    const read = (suffix: string): number => {
      const m = new RegExp(`^streamfn_cold_start_duration_seconds_${suffix}\\{function="video-analyzer"\\} (\\S+)$`, "m").exec(text);
      if (!m) throw new Error(`/metrics has no streamfn_cold_start_duration_seconds_${suffix} for video-analyzer`);
      return Number(m[1]);
    };
    return { count: read("count"), totalMs: read("sum") * 1000 };
  }
}

export class PerEventFaasApproach implements Approach {
  readonly name = "faas-per-event";
  readonly title = "per-event FaaS (functions framework + Redis state)";
  #redis: Awaited<ReturnType<typeof startRedis>> | undefined;
  #service: FaasService | undefined;
  #runId = Date.now().toString(36);
  constructor(readonly o: ApproachOptions) {}

  async setup(): Promise<void> {
    this.#redis = await startRedis();
    this.o.meter.track(this.#redis.pid, "redis-server", true);
    this.#service = new FaasService({ label: "faas", target: "videoFrame", source: kFaasSource, keepAliveMs: this.o.keepAliveMs, env: { REDIS_URL: this.#redis.url }, meter: this.o.meter });
  }

  async runClip(clip: DecodedClip): Promise<ClipRun> {
    const service = this.#service!;
    const run = newClipRun(clip, this.o.realtime);
    const headers = { "x-clip-header": clipHeader(clip, this.#runId) };
    // Frames become available at the clip's rate whether or not the function keeps up; each
    // is posted once the previous one's invocation returned (the state in Redis is per clip, so
    // a clip's invocations must not overlap).
    const ready = clip.frames.map((_, i) => frameReady(run, i, this.o.realtime));
    const invoke = async (h: Record<string, string>, body: Uint8Array): Promise<unknown> => {
      const url = await service.acquire();
      try {
        return await post(url, h, body);
      } finally {
        service.release();
      }
    };
    for (let i = 0; i < clip.frames.length; i++) {
      await ready[i];
      run.sentAt[i] = performance.now();
      const result = (await invoke(headers, clip.frames[i]!)) as FrameResult;
      run.resultAt[i] = performance.now();
      run.results.push(result);
    }
    const { summary } = (await invoke({ ...headers, "x-end": "1" }, new Uint8Array(0))) as { summary: ClipSummary };
    run.summaryAt = performance.now();
    run.summary = ownName(summary, clip);
    return run;
  }

  async coldStarts(): Promise<ColdStarts> {
    return coldStartsOf(this.#service?.coldStartMs ?? []);
  }

  idleHolds(): string {
    return "redis-server (the state store); no function instance";
  }

  async teardown(): Promise<void> {
    await this.#service?.close();
    if (this.#redis) {
      this.o.meter.retire(this.#redis.pid);
      await stopChild(this.#redis.child);
    }
  }
}

export class BatchFaasApproach implements Approach {
  readonly name = "faas-batch";
  readonly title = "batch FaaS (one invocation per clip, after its last frame)";
  #service: FaasService | undefined;
  #runId = Date.now().toString(36);
  constructor(readonly o: ApproachOptions) {}

  async setup(): Promise<void> {
    this.#service = new FaasService({ label: "faas-batch", target: "videoClip", source: kFaasSource, keepAliveMs: this.o.keepAliveMs, meter: this.o.meter });
  }

  async runClip(clip: DecodedClip): Promise<ClipRun> {
    const service = this.#service!;
    const run = newClipRun(clip, this.o.realtime);
    // The producer collects the clip as it plays (as an upload to storage would), then invokes once.
    await Promise.all(clip.frames.map((_, i) => frameReady(run, i, this.o.realtime).then((t) => (run.sentAt[i] = t))));
    const url = await service.acquire();
    let out: { results: FrameResult[]; summary: ClipSummary };
    try {
      out = (await post(url, { "x-clip-header": clipHeader(clip, this.#runId) }, joinFrames(clip.frames))) as typeof out;
    } finally {
      service.release();
    }
    const now = performance.now();
    run.results = out.results;
    run.resultAt.fill(now);
    run.summaryAt = now;
    run.summary = ownName(out.summary, clip);
    return run;
  }

  async coldStarts(): Promise<ColdStarts> {
    return coldStartsOf(this.#service?.coldStartMs ?? []);
  }

  idleHolds(): string {
    return "nothing";
  }

  async teardown(): Promise<void> {
    await this.#service?.close();
  }
}

export class StreamJobApproach implements Approach {
  readonly name = "stream-job";
  readonly title = "always-on stream job (one process, per-clip state in memory)";
  #job: Spawned | undefined;
  #port = 0;
  constructor(readonly o: ApproachOptions) {}

  async setup(): Promise<void> {
    this.#job = await spawnReady(process.execPath, ["dist/bench/video/stream-job.js"], /listening on (\d+)/);
    this.#port = Number(this.#job.match[1]);
    this.o.meter.track(this.#job.pid, "stream job", true);
  }

  async runClip(clip: DecodedClip): Promise<ClipRun> {
    const run = await streamClip(clip, { url: `ws://127.0.0.1:${this.#port}/${clip.name}`, realtime: this.o.realtime });
    run.summary = ownName(run.summary!, clip);
    return run;
  }

  async coldStarts(): Promise<ColdStarts> {
    return { count: 0, totalMs: 0 };
  }

  idleHolds(): string {
    return "the whole job process, ready for the next clip";
  }

  async teardown(): Promise<void> {
    if (!this.#job) return;
    this.o.meter.retire(this.#job.pid);
    await stopChild(this.#job.child);
  }
}
