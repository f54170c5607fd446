// The cluster gateway takes the same auth file and rate limits as `serve`: the real
// `streamfn gateway` and `streamfn worker` over a real nats-server.
import { strict as assert } from "node:assert";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { TestCluster } from "./helpers/cluster-procs.js";
import { call } from "./helpers/http-client.js";
import { kSkipWithoutNats } from "./helpers/nats-server.js";
import { StreamClient } from "./helpers/ws-client.js";

const echo = `import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({ idleTimeoutMs: 60_000, async *handler(events) { for await (const e of events) yield e; } });
`;

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

describe("cluster gateway with an auth file", { skip: kSkipWithoutNats }, () => {
  let cluster: TestCluster;
  let url: string;
  let wsUrl: string;
  before(async () => {
    cluster = await TestCluster.start({ "echo.ts": echo }, "auth");
    const auth = join(cluster.dir, "auth.json");
    await writeFile(
      auth,
      JSON.stringify({
        tokens: [
          { name: "ingest", token: "cluster-produce-secret", roles: ["produce"], limits: { streamsPerS: 1 } },
          { name: "viewer", token: "cluster-read-secret", roles: ["read"] },
          { name: "ops", token: "cluster-admin-secret", roles: ["admin"] },
        ],
      }),
    );
    await cluster.worker("w1");
    ({ url, wsUrl } = await cluster.gateway(["--auth", auth]));
  });
  after(() => cluster?.close());

  it("lets each role do its part only", async () => {
    assert.equal((await call(`${url}/healthz`)).status, 200);
    assert.equal((await call(`${url}/v1/status`)).status, 401);
    assert.equal((await call(`${url}/v1/status`, { headers: bearer("cluster-read-secret") })).status, 200);
    const forbidden = await call(`${url}/v1/status`, { headers: bearer("cluster-produce-secret") });
    assert.equal(forbidden.status, 403);
    assert.match(forbidden.body.error!.message, /token "ingest" \(roles: produce\) lacks the read role needed for the server status/);

    const refused = await StreamClient.connect(`${wsUrl}/v1/functions/echo/streams/c1`, bearer("cluster-read-secret")).catch((e: { status: number }) => e);
    assert.equal((refused as { status: number }).status, 403);

    let c: StreamClient | undefined;
    // The worker's catalog entry may still be on its way to the gateway.
    for (let i = 0; i < 200 && !c; i++) {
      c = await StreamClient.connect(`${wsUrl}/v1/functions/echo/streams/c1`, bearer("cluster-produce-secret")).catch(async (e: { status?: number }) => {
        if (e.status !== 404 && e.status !== 429) throw e;
        await new Promise((r) => setTimeout(r, 50));
        return undefined;
      });
    }
    assert.ok(c, "the producer connected");
    c.event("hi");
    await c.waitFor((r) => r.type === "output");
    const cancelAsReader = await call(`${url}/v1/functions/echo/streams/c1`, { method: "DELETE", headers: bearer("cluster-read-secret") });
    assert.equal(cancelAsReader.status, 403);
    const cancel = await call(`${url}/v1/functions/echo/streams/c1`, { method: "DELETE", headers: bearer("cluster-admin-secret") });
    assert.equal(cancel.status, 200, JSON.stringify(cancel.body));
    assert.equal(((await c.waitEnd()).error as { code: string }).code, "STREAM_CANCELLED");
  });

  it("holds the token to its rate limits", async () => {
    const attempts = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        StreamClient.connect(`${wsUrl}/v1/functions/echo/streams/r${i}`, bearer("cluster-produce-secret")).then(
          (c) => {
            c.close();
            return 101;
          },
          (e: { status: number; body: { error: { code: string } } }) => (e.body.error.code === "RATE_LIMITED" ? 429 : e.status),
        ),
      ),
    );
    assert.ok(attempts.includes(429), JSON.stringify(attempts));
  });
});
