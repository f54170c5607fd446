// The StreamTable contract (src/router/stream-table.ts) as its embedded implementation keeps
// it: batches are taken all or nothing, inside the table. Checked through the interface
// itself and over HTTP, where a refused batch must leave no trace in the stream's status.
import { strict as assert } from "node:assert";
import { after, before, describe, it } from "node:test";
import type { EndRecord, OutputSink, StreamHandle, StreamTable } from "../src/router/stream-table.js";
import { fnSource } from "./helpers/contract-util.js";
import { call } from "./helpers/http-client.js";
import { eventually, startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";

const echo = (options: string): string =>
  fnSource(`{
  ${options}
  async *handler(events) {
    for await (const e of events) yield e;
  },
}`);

/** A sink that keeps what reaches it. */
function collector(): OutputSink & { outputs: unknown[]; ended?: EndRecord } {
  const sink: OutputSink & { outputs: unknown[]; ended?: EndRecord } = {
    outputs: [],
    output(_n, json) {
      if (json !== undefined) sink.outputs.push(JSON.parse(json));
    },
    end(record) {
      sink.ended = record;
    },
  };
  return sink;
}

const ev = (data: unknown, seq?: number, bytes = JSON.stringify(data).length) => ({ data, seq, binary: false, bytes });

describe("stream table: pushBatch is all or nothing", () => {
  let t: TestServer;
  let table: StreamTable;
  before(async () => {
    t = await startTestServer({
      "echo.ts": echo("maxEventBytes: 100,"),
      "few.ts": echo("maxEvents: 3,"),
      "one.ts": echo("concurrency: 1, maxInstances: 1, inboxLimit: 4,"),
    });
    table = t.server.table;
  });
  after(() => t.close());

  it("a batch whose 3rd event is too large takes none of it", async () => {
    const sink = collector();
    const s = await table.open("echo", "too-large", sink);
    assert.throws(() => table.pushBatch(s, [ev("a"), ev("b"), ev("x".repeat(200)), ev("d")], true), (err: Error & { code?: string }) => {
      assert.equal(err.code, "EVENT_TOO_LARGE");
      assert.match(err.message, /event 3 of the batch/);
      assert.match(err.message, /none of these 4 were taken/);
      return true;
    });
    assert.deepEqual({ events: s.events, lastSeq: s.lastSeq, inputEnd: s.inputEnd }, { events: 0, lastSeq: 0, inputEnd: undefined });
    // The stream goes on: the same batch without the big event is taken whole.
    assert.deepEqual(table.pushBatch(s, [ev("a"), ev("b"), ev("d")], true), { accepted: 3, duplicates: 0, lastSeq: 3, ended: true });
    await eventually(() => sink.ended, 5_000, "the stream to end");
    assert.deepEqual(sink.outputs, ["a", "b", "d"]);
    assert.equal(sink.ended!.events, 3);
  });

  it("retries are acknowledged as duplicates, also after the input ended; new events after it are refused whole", async () => {
    const s: StreamHandle = await table.open("echo", "retries", collector());
    assert.deepEqual(table.pushBatch(s, [ev(1, 1), ev(2, 2)], false), { accepted: 2, duplicates: 0, lastSeq: 2 });
    assert.deepEqual(table.pushBatch(s, [ev(2, 2), ev(3, 3)], false), { accepted: 1, duplicates: 1, lastSeq: 3 });
    table.endInput(s, "end");
    assert.deepEqual(table.pushBatch(s, [ev(1, 1), ev(3, 3)], true), { accepted: 0, duplicates: 2, lastSeq: 3 });
    assert.throws(() => table.pushBatch(s, [ev(3, 3), ev(4, 4)], false), { code: "STREAM_INPUT_ENDED" });
    assert.equal(s.events, 3);
  });

  it("a batch with no room in the inbox is refused with INBOX_FULL and takes nothing", async () => {
    const first = await table.open("one", "holder", collector());
    const sink = collector();
    const waiting = await table.open("one", "queued", sink); // no slot: its events wait in its inbox
    assert.equal(waiting.state, "waiting");
    assert.throws(() => table.pushBatch(waiting, [ev(1), ev(2), ev(3), ev(4), ev(5)], false), (err: Error & { code?: string; retryAfterMs?: number }) => {
      assert.equal(err.code, "INBOX_FULL");
      assert.ok((err.retryAfterMs ?? 0) > 0, "a retry hint");
      return true;
    });
    assert.deepEqual({ events: waiting.events, queued: waiting.queued }, { events: 0, queued: 0 });
    assert.deepEqual(table.pushBatch(waiting, [ev(1), ev(2), ev(3), ev(4)], true), { accepted: 4, duplicates: 0, lastSeq: 4, ended: true });
    table.endInput(first, "end");
    await eventually(() => sink.ended, 10_000, "the waiting stream to run and end");
    assert.deepEqual(sink.outputs, [1, 2, 3, 4]);
  });

  it("a limit reached inside the batch is the one partial outcome: the result says what was not taken", async () => {
    const s = await table.open("few", "limit", collector());
    const r = table.pushBatch(s, [ev("a"), ev("b"), ev("c"), ev("d"), ev("e")], false);
    assert.equal(r.accepted, 3);
    assert.equal(r.rejected, 2);
    assert.equal(r.error?.code, "STREAM_INPUT_ENDED");
    assert.equal(s.inputEnd, "max-events");
  });

  it("over HTTP, a refused NDJSON batch leaves the stream's status as it was", async () => {
    const base = `${t.url}/v1/functions/echo/streams/http-batch`;
    const post = (lines: unknown[]) =>
      call(`${base}/events`, {
        method: "POST",
        headers: { "content-type": "application/x-ndjson" },
        body: lines.map((l) => JSON.stringify(l)).join("\n") + "\n",
      });
    const ok = await post([{ data: "first", seq: 1 }]);
    assert.equal(ok.status, 202, JSON.stringify(ok.body));
    const refused = await post([{ data: "a", seq: 2 }, { data: "b", seq: 3 }, { data: "x".repeat(200), seq: 4 }]);
    assert.equal(refused.status, 413);
    assert.equal(refused.body.error?.code, "EVENT_TOO_LARGE");
    const status = await call(base);
    assert.equal(status.body.events, 1);
    assert.equal(status.body.lastSeq, 1);
    const again = await post([{ data: "a", seq: 2 }, { data: "b", seq: 3 }, { end: true }]);
    assert.deepEqual(again.body, { accepted: 2, duplicates: 0, lastSeq: 3, ended: true });
  });
});
