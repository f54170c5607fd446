// Who may call what: every route of the route table, probed over real sockets with each kind
// of caller, on a server with an auth file and a legacy --token.
import { strict as assert } from "node:assert";
import { createHash } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { parseAuth } from "../src/auth/auth-config.js";
import { kRouteRules, matchRoute } from "../src/auth/route-roles.js";
import { fnSource } from "./helpers/contract-util.js";
import { startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";

const echo = fnSource(`{ idleTimeoutMs: 60000, async *handler(events) { for await (const e of events) yield e; } }`);
const kTs = { "content-type": "application/typescript" };

/** Each caller: the token it sends (none, one the server does not know, or a configured one). */
const kCallers = {
  none: undefined,
  unknown: "not-a-token-of-this-server",
  produce: "produce-secret-0001",
  read: "read-secret-0002",
  admin: "admin-secret-0003",
  legacy: "legacy-secret-0004",
} as const;
type Who = keyof typeof kCallers;

// Written out here, not derived from the table: a role changed there by mistake fails this.
const kExpectedRoles: Record<string, string[]> = {
  "GET /healthz": [],
  "GET /": [],
  "GET /dashboard/assets/:package/:file": [],
  "GET /v1/dashboard/feed": ["read"],
  "GET /v1/status": ["read"],
  "GET /metrics": ["read"],
  "GET /v1/functions": ["read"],
  "GET /v1/functions/:fn": ["read"],
  "PUT /v1/functions/:fn": ["admin"],
  "DELETE /v1/functions/:fn": ["admin"],
  "GET /v1/functions/:fn/logs": ["read"],
  "GET /v1/functions/:fn/streams": ["read"],
  "POST /v1/functions/:fn/streams": ["produce"],
  "PUT /v1/functions/:fn/streams": ["produce"],
  "WS /v1/functions/:fn/streams": ["produce"],
  "GET /v1/functions/:fn/streams/:id": ["read", "produce"],
  "POST /v1/functions/:fn/streams/:id": ["produce"],
  "PUT /v1/functions/:fn/streams/:id": ["produce"],
  "WS /v1/functions/:fn/streams/:id": ["produce"],
  "DELETE /v1/functions/:fn/streams/:id": ["admin"],
  "POST /v1/functions/:fn/streams/:id/events": ["produce"],
  "POST /v1/functions/:fn/streams/:id/end": ["produce"],
  "GET /v1/functions/:fn/streams/:id/outputs": ["read", "produce"],
  "GET /v1/functions/:fn/streams/:id/logs": ["read"],
};

const auth = parseAuth(
  {
    tokens: [
      { name: "ingest", token: kCallers.produce, roles: ["produce"] },
      // Stored as its digest: the file need not hold the secret.
      { name: "grafana", token: "sha256:" + sha256hex(kCallers.read), roles: ["read"] },
      { name: "ops", token: kCallers.admin, roles: ["admin"] },
      { name: "only-other", token: "only-other-secret-5", roles: ["produce"], functions: ["other"] },
    ],
  },
  "test auth",
);

function sha256hex(s: string): string {
  return createHash("sha256").update(s).digest("hex");
}

function headers(who: Who): Record<string, string> {
  const token = kCallers[who];
  return token === undefined ? {} : { authorization: `Bearer ${token}` };
}

/** Makes the request of one route as `who`; returns the HTTP status (101 for an accepted WebSocket). */
type Probe = (t: TestServer, who: Who) => Promise<number>;

async function status(url: string, init: RequestInit = {}): Promise<number> {
  const ac = new AbortController();
  const res = await fetch(url, { ...init, signal: ac.signal });
  // Long responses (followed logs) are left after their status.
  ac.abort();
  return res.status;
}

async function ws(url: string, h: Record<string, string>): Promise<number> {
  try {
    const c = await StreamClient.connect(url, h);
    c.event(1);
    c.end();
    await c.waitEnd();
    return 101;
  } catch (err) {
    const s = (err as { status?: number }).status;
    if (s === undefined) throw err;
    return s;
  }
}

const ndjson = (t: TestServer, who: Who, method: string, path: string): Promise<number> =>
  status(`${t.url}${path}`, { method, headers: { ...headers(who), "content-type": "application/x-ndjson" }, body: '{"data":1}\n' });

/** Per route: the request, and its status when the caller may make it. */
const kProbes: Record<string, { ok: number; probe: Probe }> = {
  "GET /healthz": { ok: 200, probe: (t, w) => status(`${t.url}/healthz`, { headers: headers(w) }) },
  "GET /": { ok: 200, probe: (t, w) => status(`${t.url}/`, { headers: headers(w) }) },
  "GET /dashboard/assets/:package/:file": {
    ok: 200,
    probe: async (t, w) => {
      const page = await (await fetch(`${t.url}/`)).text();
      const script = /src="(\/dashboard\/assets\/[^"]+\.js)"/.exec(page)?.[1];
      assert.ok(script, "the page loads its script from the assets route");
      return status(`${t.url}${script}`, { headers: headers(w) });
    },
  },
  "GET /v1/dashboard/feed": { ok: 200, probe: (t, w) => status(`${t.url}/v1/dashboard/feed`, { headers: headers(w) }) },
  "GET /v1/status": { ok: 200, probe: (t, w) => status(`${t.url}/v1/status`, { headers: headers(w) }) },
  "GET /metrics": { ok: 200, probe: (t, w) => status(`${t.url}/metrics`, { headers: headers(w) }) },
  "GET /v1/functions": { ok: 200, probe: (t, w) => status(`${t.url}/v1/functions`, { headers: headers(w) }) },
  "GET /v1/functions/:fn": { ok: 200, probe: (t, w) => status(`${t.url}/v1/functions/echo`, { headers: headers(w) }) },
  "PUT /v1/functions/:fn": {
    ok: 201,
    probe: (t, w) => status(`${t.url}/v1/functions/up-${w}`, { method: "PUT", headers: { ...headers(w), ...kTs }, body: echo }),
  },
  "DELETE /v1/functions/:fn": { ok: 200, probe: (t, w) => status(`${t.url}/v1/functions/rm-${w}`, { method: "DELETE", headers: headers(w) }) },
  "GET /v1/functions/:fn/logs": { ok: 200, probe: (t, w) => status(`${t.url}/v1/functions/echo/logs?follow=1`, { headers: headers(w) }) },
  "GET /v1/functions/:fn/streams": { ok: 200, probe: (t, w) => status(`${t.url}/v1/functions/echo/streams`, { headers: headers(w) }) },
  "POST /v1/functions/:fn/streams": { ok: 200, probe: (t, w) => ndjson(t, w, "POST", "/v1/functions/echo/streams") },
  "PUT /v1/functions/:fn/streams": { ok: 200, probe: (t, w) => ndjson(t, w, "PUT", "/v1/functions/echo/streams") },
  "WS /v1/functions/:fn/streams": { ok: 101, probe: (t, w) => ws(`${t.wsUrl}/v1/functions/echo/streams`, headers(w)) },
  "GET /v1/functions/:fn/streams/:id": { ok: 200, probe: (t, w) => status(`${t.url}/v1/functions/echo/streams/known`, { headers: headers(w) }) },
  "POST /v1/functions/:fn/streams/:id": { ok: 200, probe: (t, w) => ndjson(t, w, "POST", `/v1/functions/echo/streams/post-${w}`) },
  "PUT /v1/functions/:fn/streams/:id": { ok: 200, probe: (t, w) => ndjson(t, w, "PUT", `/v1/functions/echo/streams/put-${w}`) },
  "WS /v1/functions/:fn/streams/:id": { ok: 101, probe: (t, w) => ws(`${t.wsUrl}/v1/functions/echo/streams/ws-${w}`, headers(w)) },
  "DELETE /v1/functions/:fn/streams/:id": {
    ok: 200,
    probe: (t, w) => status(`${t.url}/v1/functions/echo/streams/live-${w}`, { method: "DELETE", headers: headers(w) }),
  },
  "POST /v1/functions/:fn/streams/:id/events": {
    ok: 202,
    probe: (t, w) =>
      status(`${t.url}/v1/functions/echo/streams/ev-${w}/events`, { method: "POST", headers: { ...headers(w), "content-type": "application/json" }, body: '{"data":1}' }),
  },
  "POST /v1/functions/:fn/streams/:id/end": {
    ok: 202,
    probe: (t, w) => status(`${t.url}/v1/functions/echo/streams/known/end`, { method: "POST", headers: headers(w) }),
  },
  "GET /v1/functions/:fn/streams/:id/outputs": {
    ok: 200,
    probe: (t, w) => status(`${t.url}/v1/functions/echo/streams/known/outputs`, { headers: headers(w) }),
  },
  "GET /v1/functions/:fn/streams/:id/logs": { ok: 200, probe: (t, w) => status(`${t.url}/v1/functions/echo/streams/known/logs`, { headers: headers(w) }) },
};

const keyOf = (r: { method: string; path: string }): string => `${r.method} ${r.path}`;

describe("tokens and roles on every route", () => {
  let t: TestServer;
  const live: StreamClient[] = [];
  before(async () => {
    t = await startTestServer({ "echo.ts": echo, "other.ts": echo }, { auth, token: kCallers.legacy });
    const admin = headers("admin");
    const known = await StreamClient.connect(`${t.wsUrl}/v1/functions/echo/streams/known`, admin);
    known.event("k");
    known.end();
    await known.waitEnd();
    for (const who of Object.keys(kCallers) as Who[]) {
      // What the DELETE probes act on: a function to retire and a live stream to cancel.
      const up = await fetch(`${t.url}/v1/functions/rm-${who}`, { method: "PUT", headers: { ...admin, ...kTs }, body: echo });
      assert.equal(up.status, 201);
      const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/echo/streams/live-${who}`, admin);
      live.push(c);
    }
  });
  after(async () => {
    for (const c of live) c.close();
    await t.close();
  });

  it("has a row, with the expected roles, for every route, and a probe for every row", () => {
    const rows = Object.fromEntries(kRouteRules.map((r) => [keyOf(r), [...r.roles].sort()]));
    const expected = Object.fromEntries(Object.entries(kExpectedRoles).map(([k, v]) => [k, [...v].sort()]));
    assert.deepEqual(rows, expected, "src/auth/route-roles.ts changed: update kExpectedRoles and kProbes here");
    assert.deepEqual(Object.keys(kProbes).sort(), Object.keys(rows).sort(), "every route needs a probe");
  });

  it("serves no route the table does not list, and lists no route the server does not serve", () => {
    const registered = t.server.gateway.registeredRoutes.map(keyOf);
    for (const r of registered) assert.ok(kRouteRules.some((row) => keyOf(row) === r), `${r} has a row`);
    // The rest are the stream protocol's (answered by the stream handlers, not route()).
    const streamProtocol = kRouteRules.filter((r) => !registered.includes(keyOf(r))).map(keyOf);
    for (const k of streamProtocol) assert.match(k, /^(WS|GET|POST|PUT) \/v1\/functions\/:fn\/streams(\/:id(\/(events|end|outputs))?)?$/, k);
    assert.throws(() => t.server.gateway.route("GET", "/v1/new-thing", () => {}), /has no role in src\/auth\/route-roles\.ts/);
  });

  for (const rule of kRouteRules) {
    const key = keyOf(rule);
    it(`${key}: ${rule.roles.length ? rule.roles.join(" or ") : "no token needed"}`, async () => {
      const { ok, probe } = kProbes[key]!;
      for (const who of Object.keys(kCallers) as Who[]) {
        const allowed =
          rule.roles.length === 0 || who === "admin" || who === "legacy" || (who !== "none" && who !== "unknown" && rule.roles.includes(who));
        const expected = allowed ? ok : who === "none" || who === "unknown" ? 401 : 403;
        assert.equal(await probe(t, who), expected, `${key} as ${who}`);
      }
    });
  }

  it("names what was missing, never the token", async () => {
    const none = await (await fetch(`${t.url}/v1/status`)).json() as { error: { code: string; message: string } };
    assert.equal(none.error.code, "UNAUTHORIZED");
    assert.match(none.error.message, /missing token: the server status needs a token with the read role/);
    const unknown = await (await fetch(`${t.url}/v1/status?token=${kCallers.unknown}`)).json() as { error: { code: string; message: string } };
    assert.match(unknown.error.message, /^unknown token/);
    assert.ok(!unknown.error.message.includes(kCallers.unknown));
    const res = await fetch(`${t.url}/v1/functions/up-x`, { method: "PUT", headers: { ...headers("read"), ...kTs }, body: echo });
    const body = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(res.status, 403);
    assert.equal(body.error.code, "FORBIDDEN");
    assert.match(body.error.message, /token "grafana" \(roles: read\) lacks the admin role needed for deploying a function/);
    assert.ok(!JSON.stringify(body).includes(kCallers.read));
    assert.ok(!t.logText().includes(kCallers.read) && !t.logText().includes(kCallers.admin) && !t.logText().includes(kCallers.unknown));
  });

  it("takes the token from ?token= for the dashboard and browsers' WebSockets", async () => {
    assert.equal((await fetch(`${t.url}/?token=${kCallers.read}`)).status, 200);
    assert.equal((await fetch(`${t.url}/v1/status?token=${kCallers.read}`)).status, 200);
    assert.equal(await ws(`${t.wsUrl}/v1/functions/echo/streams?token=${kCallers.produce}`, {}), 101);
  });

  it("lets a produce token narrowed to some functions stream to those only, naming the one refused", async () => {
    const h = { authorization: "Bearer only-other-secret-5" };
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/other/streams`, h);
    c.event({ n: 1 });
    c.end();
    assert.equal((await c.waitEnd()).status, "completed");
    assert.deepEqual(c.outputs(), [{ n: 1 }]);
    const refused = await StreamClient.connect(`${t.wsUrl}/v1/functions/echo/streams`, h).then(
      () => assert.fail("connected"),
      (err: { status: number; body: { error: { code: string; message: string } } }) => err,
    );
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error.code, "FORBIDDEN");
    assert.match(refused.body.error.message, /token "only-other" may not produce to function "echo": it may produce only to other/);
    const post = await fetch(`${t.url}/v1/functions/echo/streams/x/events`, { method: "POST", headers: { ...h, "content-type": "application/json" }, body: '{"data":1}' });
    assert.equal(post.status, 403);
    const ok = await fetch(`${t.url}/v1/functions/other/streams/x/events`, { method: "POST", headers: { ...h, "content-type": "application/json" }, body: '{"data":1}' });
    assert.equal(ok.status, 202);
  });

  it("matches paths the way the gateway routes them", () => {
    assert.equal(matchRoute("GET", "/v1/functions/e%63ho/streams/a/outputs")?.fn, "echo");
    assert.equal(matchRoute("GET", "/v1/functions/echo/streams/a/nope"), undefined);
    assert.equal(matchRoute("GET", "/v1/functions//streams"), undefined);
  });
});
