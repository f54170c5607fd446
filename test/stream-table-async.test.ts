// The gateway against a stream table whose `open` answers later (as cluster mode's will):
// refusals are still plain HTTP statuses before the WebSocket upgrade, and a client that
// leaves while its stream is being opened does not keep the stream id busy.
import { strict as assert } from "node:assert";
import { connect } from "node:net";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { Gateway } from "../src/gateway/gateway.js";
import { createHttpStreams } from "../src/gateway/http-streams.js";
import type { StreamTable } from "../src/router/stream-table.js";
import { fnSource, refused } from "./helpers/contract-util.js";
import { NdjsonStream } from "./helpers/http-client.js";
import { eventually, startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";

const kOpenDelayMs = 50;

/** The same table, but `open` and `openOrGet` answer with a Promise after a delay. */
function openingLater(table: StreamTable): StreamTable {
  return new Proxy(table, {
    get(target, prop) {
      if (prop === "open" || prop === "openOrGet") {
        const method = Reflect.get(target, prop, target) as (...args: unknown[]) => unknown;
        return (...args: unknown[]) =>
          new Promise((resolve, reject) => {
            setTimeout(() => {
              try {
                resolve(method.apply(target, args));
              } catch (err) {
                reject(err);
              }
            }, kOpenDelayMs);
          });
      }
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

describe("gateway over a stream table that opens asynchronously", () => {
  let t: TestServer;
  let gateway: Gateway;
  let base: string;
  const opened = new Set<string>();
  const closed = new Set<string>();
  before(async () => {
    t = await startTestServer(
      { "echo.ts": fnSource(`{ async *handler(events) { for await (const e of events) yield e; } }`) },
      { observer: { streamOpened: (s) => opened.add(s.streamId), streamClosed: (s) => closed.add(s.streamId) } },
    );
    const table = openingLater(t.server.table);
    gateway = new Gateway(table, { pingIntervalMs: 0 });
    gateway.streamHttp(createHttpStreams(table));
    await new Promise<void>((resolve) => gateway.server.listen(0, "127.0.0.1", resolve));
    base = `127.0.0.1:${(gateway.server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await gateway.close();
    await t.close();
  });

  it("serves a WebSocket stream once the table has opened it", async () => {
    const c = await StreamClient.connect(`ws://${base}/v1/functions/echo/streams/later-ws`);
    c.event("a");
    c.event("b");
    c.end();
    const end = await c.waitEnd();
    assert.equal(end.status, "completed");
    assert.deepEqual(c.outputs(), ["a", "b"]);
  });

  it("answers refusals as plain HTTP statuses before upgrading", async () => {
    const missing = await refused(`ws://${base}/v1/functions/nope/streams/x`);
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, "FUNCTION_NOT_FOUND");
    const holder = await StreamClient.connect(`ws://${base}/v1/functions/echo/streams/later-busy`);
    const busy = await refused(`ws://${base}/v1/functions/echo/streams/later-busy`);
    assert.equal(busy.status, 409);
    assert.equal(busy.body.error.code, "STREAM_BUSY");
    holder.end();
    await holder.waitEnd();
  });

  it("a client that leaves while its stream is opening leaves the id free", async () => {
    const id = "later-gone";
    await new Promise<void>((resolve, reject) => {
      const [host, port] = base.split(":");
      const s = connect(Number(port), host, () => {
        s.write(
          `GET /v1/functions/echo/streams/${id} HTTP/1.1\r\nHost: ${base}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        );
        s.destroy(); // gone before the table answers
        resolve();
      });
      s.on("error", reject);
    });
    // The table opens it after the client left; the gateway withdraws it again.
    await eventually(() => opened.has(id), 5_000, "the table to open the stream");
    await eventually(() => closed.has(id), 5_000, "the stream to be withdrawn");
    assert.equal(t.server.table.get("echo", id), undefined, "not left open for nobody");
    assert.equal(t.server.table.ended("echo", id), undefined, "not remembered as ended");
    const c = await StreamClient.connect(`ws://${base}/v1/functions/echo/streams/${id}`);
    c.event("retry");
    c.end();
    await c.waitEnd();
    assert.deepEqual(c.outputs(), ["retry"]);
  });

  it("serves a whole NDJSON stream and posted events", async () => {
    const n = new NdjsonStream(`http://${base}/v1/functions/echo/streams/later-ndjson`);
    await n.write({ data: 1 }, { data: 2 });
    n.end();
    const end = await n.waitEnd();
    assert.equal(end.status, "completed");
    assert.deepEqual(n.outputs(), [1, 2]);
    const posted = await fetch(`http://${base}/v1/functions/echo/streams/later-posted/events`, {
      method: "POST",
      headers: { "content-type": "application/x-ndjson" },
      body: '{"data":"x"}\n{"data":"y"}\n{"end":true}\n',
    });
    assert.equal(posted.status, 202);
    assert.deepEqual(await posted.json(), { accepted: 2, duplicates: 0, lastSeq: 2, ended: true });
  });
});
