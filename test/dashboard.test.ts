import { strict as assert } from "node:assert";
import { request } from "node:http";
import type { IncomingMessage } from "node:http";
import { describe, it } from "node:test";
import { quantile } from "../src/dashboard/sampler.js";
import { eventually, startTestServer } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";

const echo = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({ async *handler(events) { for await (const e of events) yield e; } });`;

const fail = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  async *handler(events) {
    for await (const e of events) { if (e === "boom") throw new Error("boom"); yield e; }
  },
});`;

interface SseEvent {
  event: string;
  data: any;
}

/** A reader of the dashboard feed over a raw socket: parsed events as they come. */
class FeedReader {
  readonly events: SseEvent[] = [];
  #buf = "";
  #res: IncomingMessage | undefined;
  readonly ready: Promise<IncomingMessage>;

  constructor(url: string, headers: Record<string, string> = {}) {
    this.ready = new Promise((resolve, reject) => {
      const req = request(url, { headers }, (res) => {
        this.#res = res;
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          this.#buf += chunk;
          let end: number;
          while ((end = this.#buf.indexOf("\n\n")) >= 0) {
            const block = this.#buf.slice(0, end);
            this.#buf = this.#buf.slice(end + 2);
            const event = /^event: (.*)$/m.exec(block)?.[1];
            const data = /^data: (.*)$/m.exec(block)?.[1];
            if (event && data) this.events.push({ event, data: JSON.parse(data) });
          }
        });
        resolve(res);
      });
      req.on("error", reject);
      req.end();
    });
  }

  /** The first tick (from now on, or already received) that `pred` accepts. */
  tick(pred: (data: any) => boolean, what: string): Promise<any> {
    return eventually(() => this.events.find((e) => e.event === "tick" && pred(e.data))?.data, 10_000, what);
  }

  close(): void {
    this.#res?.destroy();
  }
}

describe("dashboard", () => {
  it("serves the page and uPlot's files without the token, with caching headers; the data needs the token", async () => {
    const t = await startTestServer({ "echo.ts": echo }, { token: "s3cret" });
    try {
      const res = await fetch(`${t.url}/`);
      assert.equal(res.status, 200, "the page is a shell with a login field: it holds no data");
      assert.match(res.headers.get("content-type") ?? "", /^text\/html/);
      const html = await res.text();
      assert.match(html, /<title>streamfn<\/title>/);
      assert.match(html, /id="token"/);
      assert.match(html, /new EventSource\(withToken\("\/v1\/dashboard\/feed"\)\)/);
      const js = /<script src="([^"]+uPlot\.iife\.min\.js)"/.exec(html)?.[1];
      const css = /<link rel="stylesheet" href="([^"]+uPlot\.min\.css)"/.exec(html)?.[1];
      assert.equal(js, "/dashboard/assets/uplot-1.6.32/uPlot.iife.min.js");
      assert.equal(css, "/dashboard/assets/uplot-1.6.32/uPlot.min.css");
      assert.doesNotMatch(html, /https?:\/\//, "nothing is loaded from another host");

      const lib = await fetch(`${t.url}${js}`);
      assert.equal(lib.status, 200);
      assert.match(lib.headers.get("content-type") ?? "", /^text\/javascript/);
      assert.equal(lib.headers.get("cache-control"), "public, max-age=31536000, immutable");
      assert.match(await lib.text(), /uPlot/);
      const etag = lib.headers.get("etag")!;
      assert.ok(etag);
      const again = await fetch(`${t.url}${js}`, { headers: { "if-none-match": etag } });
      assert.equal(again.status, 304);
      const style = await fetch(`${t.url}${css}`);
      assert.equal(style.status, 200);
      assert.match(style.headers.get("content-type") ?? "", /^text\/css/);

      // Nothing but the listed files is served under the asset path, with or without a token.
      assert.equal((await fetch(`${t.url}/dashboard/assets/uplot-1.6.32/package.json`)).status, 404);
      assert.equal((await fetch(`${t.url}/dashboard/assets/uplot-1.6.32/..%2Fpackage.json`)).status, 404);
      assert.equal((await fetch(`${t.url}/v1/dashboard/feed`)).status, 401);
      assert.equal((await fetch(`${t.url}/v1/status`)).status, 401);
      const feed = new FeedReader(`${t.url}/v1/dashboard/feed?token=s3cret`);
      const r = await feed.ready;
      assert.equal(r.statusCode, 200);
      assert.match(r.headers["content-type"] ?? "", /^text\/event-stream/);
      await feed.tick((d) => d.functions.some((f: any) => f.name === "echo"), "a tick naming echo");
      feed.close();
    } finally {
      await t.close();
    }
  });

  it("feeds history and ticks to viewers, runs its sampler only while one is connected, and shows streams and failures", async () => {
    const t = await startTestServer({ "echo.ts": echo, "fail.ts": fail });
    try {
      const sampler = t.server.dashboard.sampler;
      assert.equal(sampler.running, false, "nobody watches: no sampling");
      const a = new FeedReader(`${t.url}/v1/dashboard/feed`);
      await a.ready;
      assert.equal(sampler.running, true);
      await eventually(() => a.events[0], 5_000, "hello");
      const hello = a.events[0]!;
      assert.equal(hello.event, "hello");
      assert.equal(hello.data.intervalMs, 1000);
      assert.equal(hello.data.historyLength, 600);
      assert.ok(Array.isArray(hello.data.latencyBoundsMs));

      const ok = await StreamClient.connect(`${t.wsUrl}/v1/functions/echo/streams/ok-1`);
      for (const n of [1, 2, 3]) ok.event(n);
      ok.end();
      await ok.waitEnd();
      const bad = await StreamClient.connect(`${t.wsUrl}/v1/functions/fail/streams/bad-1`);
      bad.event("x");
      bad.event("boom");
      await bad.waitEnd();
      const live = await StreamClient.connect(`${t.wsUrl}/v1/functions/echo/streams/live-1`);
      live.event("a");
      await live.waitFor((r) => r.type === "output");

      const tick = await a.tick((d) => d.streams.length === 3, "a tick with three streams");
      assert.deepEqual(
        tick.streams.map((s: any) => [s.fn, s.id, s.state, s.events, s.outputs, s.reason, s.code]),
        [
          ["echo", "live-1", "running", 1, 1, null, null],
          ["fail", "bad-1", "failed", 2, 1, "error", "HANDLER_ERROR"],
          ["echo", "ok-1", "completed", 3, 3, "end", null],
        ],
      );
      const echoInfo = tick.functions.find((f: any) => f.name === "echo");
      assert.equal(echoInfo.totals.events, 4);
      assert.equal(echoInfo.versions[0].role, "current");
      assert.equal(echoInfo.versions[0].live, 1);
      assert.equal(echoInfo.options.idleTimeoutMs, 10_000);
      assert.equal(tick.samples.echo.live, 1);
      assert.equal(tick.samples.echo.instances, 1);
      assert.deepEqual(tick.functions.find((f: any) => f.name === "fail").failures, { HANDLER_ERROR: 1 });
      // Four outputs answered events within the latency window: percentiles, in ms.
      assert.equal(typeof tick.samples.echo.p50Ms, "number");
      assert.ok(tick.samples.echo.p99Ms >= tick.samples.echo.p50Ms);
      // ok-1 ended: one stream in echo's duration distribution.
      assert.equal(echoInfo.durations.reduce((n: number, c: number) => n + c, 0), 1);

      // A second viewer gets the history kept so far in its hello, and the same ticks.
      const b = new FeedReader(`${t.url}/v1/dashboard/feed`);
      await eventually(() => b.events[0], 5_000, "second hello");
      assert.ok(b.events[0]!.data.history.echo.length >= 1);
      a.close();
      await eventually(() => t.server.dashboard.feed.viewers === 1, 5_000, "one viewer left");
      assert.equal(sampler.running, true);
      b.close();
      await eventually(() => !sampler.running, 5_000, "sampler stopped once nobody watches");
      live.close();
    } finally {
      await t.close();
    }
  });

  it("tells in a stream's status whether it started cold or warm, and on which instance", async () => {
    const t = await startTestServer({ "echo.ts": echo });
    try {
      const first = await StreamClient.connect(`${t.wsUrl}/v1/functions/echo/streams/first`);
      first.event(1);
      await first.waitFor((r) => r.type === "output");
      const live = (await (await fetch(`${t.url}/v1/functions/echo/streams/first`)).json()) as Record<string, any>;
      assert.equal(live.start, "cold");
      assert.ok(live.coldStartMs > 0);
      first.end();
      await first.waitEnd();
      const ended = (await (await fetch(`${t.url}/v1/functions/echo/streams/first`)).json()) as Record<string, any>;
      assert.equal(ended.state, "ended");
      assert.equal(ended.start, "cold");
      assert.equal(ended.instance, live.instance);
      assert.equal(typeof ended.boundAt, "string");
      assert.equal(typeof ended.lastEventAt, "string");
      const second = await StreamClient.connect(`${t.wsUrl}/v1/functions/echo/streams/second`);
      second.event(1);
      second.end();
      await second.waitEnd();
      const warm = (await (await fetch(`${t.url}/v1/functions/echo/streams/second`)).json()) as Record<string, any>;
      assert.equal(warm.start, "warm");
      assert.equal(warm.coldStartMs, null);
      assert.equal(warm.instance, live.instance);
    } finally {
      await t.close();
    }
  });

  it("reads percentiles off bucket counts as Prometheus does: linear inside the bucket, capped at the last bound", () => {
    const bounds = [1, 2, 5];
    assert.equal(quantile([0, 0, 0, 0], bounds, 0.5), null);
    assert.equal(quantile([0, 2, 2, 0], bounds, 0.5), 2);
    assert.equal(quantile([0, 2, 2, 0], bounds, 0.75), 3.5);
    assert.equal(quantile([4, 0, 0, 0], bounds, 0.5), 0.5);
    assert.equal(quantile([0, 0, 0, 3], bounds, 0.99), 5);
  });
});
