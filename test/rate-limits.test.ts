// Rate limits per token and per client address, over real sockets: the client over its limit
// is refused (429 + Retry-After) or held back (WebSocket, NDJSON), the others are served.
import { strict as assert } from "node:assert";
import { request } from "node:http";
import { after, before, describe, it } from "node:test";
import { parseAuth } from "../src/auth/auth-config.js";
import { RateLimiter, kExposedAddressLimits } from "../src/auth/rate-limits.js";
import { addressLimits } from "../src/auth/safe-defaults.js";
import { fnSource } from "./helpers/contract-util.js";
import { call } from "./helpers/http-client.js";
import { scrape } from "./helpers/metrics-text.js";
import { startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";
import type { Rec } from "./helpers/ws-client.js";

const echo = fnSource(`{ idleTimeoutMs: 60000, async *handler(events) { for await (const e of events) yield e; } }`);

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

interface Refusal {
  status: number;
  body: { error: { code: string; message: string } };
  headers: Record<string, string | string[] | undefined>;
}

function connectOrRefusal(url: string, headers: Record<string, string>): Promise<StreamClient | Refusal> {
  return StreamClient.connect(url, headers).catch((err: Refusal) => {
    if (typeof err.status !== "number") throw err;
    return err;
  });
}

/** A whole NDJSON stream in one request from `localAddress`; the status and the records. */
function ndjsonFrom(url: string, lines: unknown[], localAddress: string, headers: Record<string, string> = {}): Promise<{ status: number; records: Rec[]; retryAfter?: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "POST", localAddress, headers: { "content-type": "application/x-ndjson", ...headers } }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () => {
        const status = res.statusCode ?? 0;
        const records = status === 200 ? text.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Rec) : [JSON.parse(text) as Rec];
        resolve({ status, records, retryAfter: res.headers["retry-after"] as string | undefined });
      });
    });
    req.on("error", reject);
    req.end(lines.map((l) => JSON.stringify(l)).join("\n") + "\n");
  });
}

describe("rate limits per token", () => {
  let t: TestServer;
  before(async () => {
    const auth = parseAuth(
      {
        tokens: [
          { name: "flood-streams", token: "flood-streams-secret", roles: ["produce"], limits: { streamsPerS: 1 } },
          { name: "flood-events", token: "flood-events-secret", roles: ["produce"], limits: { eventsPerS: 50 } },
          { name: "flood-http", token: "flood-http-secret", roles: ["produce", "read"], limits: { eventsPerS: 5 } },
          { name: "flood-bytes", token: "flood-bytes-secret", roles: ["produce"], limits: { bytesPerS: 1000 } },
          { name: "two-at-once", token: "two-at-once-secret", roles: ["produce"], limits: { concurrentStreams: 2 } },
          { name: "calm", token: "calm-secret", roles: ["produce"] },
        ],
      },
      "test auth",
    );
    t = await startTestServer({ "echo.ts": echo }, { auth });
  });
  after(() => t.close());

  it("refuses new WebSocket streams over streamsPerS with 429, Retry-After and RATE_LIMITED, while another token streams", async () => {
    const calm = await StreamClient.connect(`${t.wsUrl}/v1/functions/echo/streams`, bearer("calm-secret"));
    const attempts = await Promise.all(
      Array.from({ length: 10 }, () => connectOrRefusal(`${t.wsUrl}/v1/functions/echo/streams`, bearer("flood-streams-secret"))),
    );
    const refused = attempts.filter((a): a is Refusal => !(a instanceof StreamClient));
    const opened = attempts.filter((a): a is StreamClient => a instanceof StreamClient);
    assert.ok(refused.length > 0, "some were refused");
    for (const r of refused) {
      assert.equal(r.status, 429);
      assert.equal(r.body.error.code, "RATE_LIMITED");
      assert.match(r.body.error.message, /token "flood-streams" opens new streams faster than its streamsPerS limit \(1\/s\)/);
      assert.match(String(r.headers["retry-after"]), /^\d+$/);
    }
    for (let i = 0; i < 20; i++) calm.event(i);
    calm.end();
    assert.equal((await calm.waitEnd()).status, "completed");
    assert.equal(calm.outputs().length, 20);
    assert.deepEqual(calm.errors(), []);
    for (const c of opened) c.close();
    // Operators see the refusals per limit.
    const m = await scrape(t.url, bearer("flood-http-secret"));
    assert.equal(m.type("streamfn_rate_limited_total"), "counter");
    assert.ok((m.value("streamfn_rate_limited_total", { limit: "streamsPerS" }) ?? 0) >= refused.length, m.text.split("\n").filter((l) => l.includes("rate_limited")).join("\n"));
  });

  it("holds a WebSocket producer over eventsPerS back with an error record, drops nothing, and serves another token meanwhile", async () => {
    const flood = await StreamClient.connect(`${t.wsUrl}/v1/functions/echo/streams`, bearer("flood-events-secret"));
    for (let i = 1; i <= 150; i++) flood.event(i, i);
    flood.end();
    const notice = await flood.waitFor((r) => r.type === "error", 10_000);
    assert.equal(notice.code, "RATE_LIMITED");
    assert.equal(notice.limit, "eventsPerS");
    assert.match(String(notice.message), /token "flood-events" sends events faster than its eventsPerS limit \(50\/s\)/);
    assert.equal(typeof notice.retryAfterMs, "number");

    const calm = await StreamClient.connect(`${t.wsUrl}/v1/functions/echo/streams`, bearer("calm-secret"));
    for (let i = 0; i < 30; i++) calm.event(i);
    calm.end();
    assert.equal((await calm.waitEnd()).status, "completed");
    assert.equal(calm.outputs().length, 30);
    assert.deepEqual(calm.errors(), []);

    const end = await flood.waitEnd(20_000);
    assert.equal(end.status, "completed");
    assert.equal(end.events, 150, "every event was taken, in order");
    assert.deepEqual(flood.outputs(), Array.from({ length: 150 }, (_, i) => i + 1));
    assert.ok(flood.errors().every((e) => e.code === "RATE_LIMITED"));
  });

  it("refuses POSTed events over eventsPerS or bytesPerS whole (429, Retry-After), taking none of them", async () => {
    const url = `${t.url}/v1/functions/echo/streams/posted/events`;
    const post = (n: number, pad = "", token = "flood-http-secret"): Promise<Awaited<ReturnType<typeof call>>> =>
      call(pad ? url.replace("/posted/", "/posted-bytes/") : url, {
        method: "POST",
        headers: { ...bearer(token), "content-type": "application/x-ndjson" },
        body: Array.from({ length: n }, () => JSON.stringify({ data: pad || 1 })).join("\n") + "\n",
      });
    assert.equal((await post(5)).status, 202);
    const over = await post(5);
    assert.equal(over.status, 429);
    assert.equal(over.body.error!.code, "RATE_LIMITED");
    assert.match(over.body.error!.message, /eventsPerS limit \(5\/s\)/);
    assert.match(over.headers.get("retry-after") ?? "", /^\d+$/);
    const status = await call(`${t.url}/v1/functions/echo/streams/posted`, { headers: bearer("flood-http-secret") });
    assert.equal(status.body.events, 5, "the refused batch took nothing");

    // bytesPerS: a second of it spent at once, the next event waits.
    const big = "x".repeat(900);
    let res = await post(1, big, "flood-bytes-secret");
    for (let i = 0; i < 20 && res.status === 202; i++) res = await post(1, big, "flood-bytes-secret");
    assert.equal(res.status, 429);
    assert.equal(res.body.error!.code, "RATE_LIMITED");
    assert.match(res.body.error!.message, /token "flood-bytes" sends event bytes faster than its bytesPerS limit \(1000\/s\)/);
  });

  it("refuses a stream over concurrentStreams until one of the token's streams ends", async () => {
    const h = bearer("two-at-once-secret");
    const a = await StreamClient.connect(`${t.wsUrl}/v1/functions/echo/streams`, h);
    const b = await StreamClient.connect(`${t.wsUrl}/v1/functions/echo/streams`, h);
    const third = await connectOrRefusal(`${t.wsUrl}/v1/functions/echo/streams`, h);
    assert.ok(!(third instanceof StreamClient), "the third was refused");
    assert.equal(third.status, 429);
    assert.match(third.body.error.message, /token "two-at-once" already has 2 open streams, its concurrentStreams limit/);
    // An NDJSON stream and a first POSTed event count too.
    const posted = await call(`${t.url}/v1/functions/echo/streams/third/events`, { method: "POST", headers: { ...h, "content-type": "application/json" }, body: '{"data":1}' });
    assert.equal(posted.status, 429);
    a.end();
    await a.waitEnd();
    // The end reached the count: a new stream opens.
    let fourth: StreamClient | Refusal | undefined;
    for (let i = 0; i < 100; i++) {
      fourth = await connectOrRefusal(`${t.wsUrl}/v1/functions/echo/streams`, h);
      if (fourth instanceof StreamClient) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(fourth instanceof StreamClient, "opened once a stream ended");
    fourth.end();
    b.end();
    await Promise.all([fourth.waitEnd(), b.waitEnd()]);
  });
});

describe("rate limits per client address", () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ "echo.ts": echo }, { limits: { streamsPerS: 1, eventsPerS: 20 } });
  });
  after(() => t.close());

  it("refuses one address's flood of new streams while another address is served", async () => {
    const url = `${t.url}/v1/functions/echo/streams`;
    const [flood, other] = await Promise.all([
      Promise.all(Array.from({ length: 8 }, () => ndjsonFrom(url, [{ data: 1 }], "127.0.0.1"))),
      ndjsonFrom(url, [{ data: "a" }, { data: "b" }], "127.0.0.2"),
    ]);
    const refused = flood.filter((r) => r.status === 429);
    assert.ok(refused.length > 0);
    for (const r of refused) {
      assert.equal(r.records[0]!.error && (r.records[0]!.error as { code: string }).code, "RATE_LIMITED");
      assert.match((r.records[0]!.error as { message: string }).message, /client address 127\.0\.0\.1 opens new streams faster than its streamsPerS limit/);
      assert.match(r.retryAfter ?? "", /^\d+$/);
    }
    assert.equal(other.status, 200);
    assert.deepEqual(other.records.filter((r) => r.type === "output").map((r) => r.data), ["a", "b"]);
    assert.equal(other.records.at(-1)!.status, "completed");
  });

  it("holds an NDJSON body over eventsPerS back with an error record naming the limit, and takes every line", async () => {
    const lines = Array.from({ length: 60 }, (_, i) => ({ data: i, seq: i + 1 }));
    let r = await ndjsonFrom(`${t.url}/v1/functions/echo/streams`, lines, "127.0.0.3");
    assert.equal(r.status, 200);
    const notices = r.records.filter((x) => x.type === "error");
    assert.ok(notices.length > 0);
    assert.equal(notices[0]!.code, "RATE_LIMITED");
    assert.equal(notices[0]!.limit, "eventsPerS");
    assert.match(String(notices[0]!.message), /client address 127\.0\.0\.3 sends events faster than its eventsPerS limit \(20\/s\)/);
    assert.deepEqual(r.records.filter((x) => x.type === "output").map((x) => x.data), lines.map((l) => l.data));
    assert.equal(r.records.at(-1)!.events, 60);
    // A fresh address is not held back by that one.
    r = await ndjsonFrom(`${t.url}/v1/functions/echo/streams`, [{ data: 1 }], "127.0.0.4");
    assert.deepEqual(r.records.filter((x) => x.type === "error"), []);
  });
});

describe("the rate limiter's key table", () => {
  it("stays bounded under a flood of distinct addresses", () => {
    const limiter = new RateLimiter({ address: { streamsPerS: 1 }, token: () => ({}), maxAddressKeys: 100 });
    for (let i = 0; i < 5_000; i++) {
      const lim = limiter.forClient(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, undefined)!;
      lim.admitStream().release();
      assert.ok(limiter.addressKeys <= 100);
    }
    assert.equal(limiter.addressKeys, 100);
    // A token without limits costs nothing to track.
    assert.equal(new RateLimiter({ address: {}, token: () => ({}) }).forClient("10.0.0.1", "t"), undefined);
  });

  it("has generous per-address defaults off loopback and none on it; configured ones win", () => {
    assert.deepEqual(addressLimits("127.0.0.1", undefined, undefined), {});
    assert.deepEqual(addressLimits("0.0.0.0", undefined, undefined), kExposedAddressLimits);
    assert.deepEqual(addressLimits("0.0.0.0", undefined, { eventsPerS: 0 }), { ...kExposedAddressLimits, eventsPerS: 0 });
  });
});
