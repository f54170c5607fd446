// Contract: bad input gets a clear error and loses nothing else; late events are refused.
import { strict as assert } from "node:assert";
import { connect } from "node:net";
import { after, before, describe, it } from "node:test";
import { fnSource, refused } from "./helpers/contract-util.js";
import { forEachSandbox, inProcessOnly, notOnCluster, startContractTarget } from "./helpers/contract-target.js";
import type { ContractTarget } from "./helpers/contract-target.js";
import { call } from "./helpers/http-client.js";
import { eventually, sleep } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";

const echo = fnSource(`{
  maxEventBytes: 100,
  async *handler(events, ctx) {
    for await (const e of events) yield e instanceof Uint8Array ? { bytes: e.byteLength } : e;
    if (ctx.streamId.startsWith("slow-end")) await new Promise((r) => setTimeout(r, 300));
    yield "done";
  },
}`);

forEachSandbox((sandbox) =>
describe(`contract: bad input and late events [${sandbox} sandbox]`, () => {
  let t: ContractTarget;
  before(async () => {
    t = await startContractTarget({ "echo.ts": echo }, { endedRetentionMs: 60_000, sandbox });
  });
  after(() => t.close());

  const url = (id = ""): string => `${t.wsUrl}/v1/functions/echo/streams${id ? `/${id}` : ""}`;

  it("answers each malformed message with an error record of the right code; the stream goes on", async () => {
    const c = await StreamClient.connect(url("bad-input"));
    c.event("first", 1);
    c.send("{not json");
    c.send({ foo: 1 });
    c.send({ end: false });
    c.send({ end: true, data: 1 });
    c.send({ data: 1, seq: -1 });
    c.send({ data: 1, seq: 1.5 });
    c.send({ data: 1, seq: "2" });
    c.send({ data: 1, extra: true });
    c.send("[1,2]");
    c.send("null");
    c.event("x".repeat(200), 2); // bigger than maxEventBytes (100)
    c.binary(new Uint8Array(101));
    c.event("second", 3);
    c.binary(new Uint8Array(100)); // exactly the limit: accepted
    c.end();
    const end = await c.waitEnd();
    assert.equal(end.status, "completed", JSON.stringify(end));
    assert.equal(end.reason, "end");
    assert.equal(end.events, 3);
    assert.deepEqual(c.outputs(), ["first", "second", { bytes: 100 }, "done"]);
    const errors = c.errors();
    assert.deepEqual(
      errors.map((e) => e.code),
      [
        "INVALID_JSON",
        "INVALID_ENVELOPE",
        "INVALID_ENVELOPE",
        "INVALID_ENVELOPE",
        "INVALID_SEQ",
        "INVALID_SEQ",
        "INVALID_SEQ",
        "INVALID_ENVELOPE",
        "INVALID_ENVELOPE",
        "INVALID_ENVELOPE",
        "EVENT_TOO_LARGE",
        "EVENT_TOO_LARGE",
      ],
    );
    for (const e of errors) assert.ok(typeof e.message === "string" && e.message.length > 10, JSON.stringify(e));
    assert.match(String(errors[1]!.message), /"data"/, "the message says what an event needs");
    assert.match(String(errors[7]!.message), /extra/, "the message names the unknown field");
    assert.match(String(errors[10]!.message), /maxEventBytes \(100\)/);
    assert.equal(errors[10]!.seq, 2, "a rejected event's seq is echoed so the producer knows which one");
    // Error records arrive in the order of the messages they answer, before the end record.
    const kinds = c.records.map((r) => r.type);
    assert.equal(kinds[0], "open");
    assert.equal(kinds.at(-1), "end");
  });

  it("names a refused event by its seq as sent: 1.5 is answered as 1.5, not as 1", async () => {
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/echo/streams/seq-as-sent`);
    c.ws.send('{"data":1,"seq":1.5}');
    c.ws.send('{"data":1,"seq":"7"}');
    c.ws.send('{"data":,"seq":2.5}'); // not JSON: the seq is read from the text
    c.event("ok", 1);
    c.end();
    await c.waitEnd();
    const errors = c.errors();
    assert.deepEqual(errors.map((e) => [e.code, e.seq]), [["INVALID_SEQ", 1.5], ["INVALID_SEQ", undefined], ["INVALID_JSON", 2.5]]);
    assert.match(String(errors[0]!.message), /got 1\.5$/);
    assert.match(String(errors[1]!.message), /got "7"$/);
    assert.deepEqual(c.outputs().slice(0, 1), ["ok"]);
  });

  it("refuses an unknown function at the handshake with 404 FUNCTION_NOT_FOUND", async () => {
    const r = await refused(`${t.wsUrl}/v1/functions/no-such-fn/streams/s`);
    assert.equal(r.status, 404);
    assert.equal(r.body.error.code, "FUNCTION_NOT_FOUND");
    assert.match(r.body.error.message, /no-such-fn/);
  });

  it("refuses a bad stream id with 400 INVALID_STREAM_ID", async () => {
    for (const id of ["has%20space", "x".repeat(129), "semi%3Bcolon", "%C3%A9t%C3%A9"]) {
      const r = await refused(url(id));
      assert.equal(r.status, 400, id);
      assert.equal(r.body.error.code, "INVALID_STREAM_ID");
    }
    // The longest allowed id and every allowed character work.
    const ok = await StreamClient.connect(url(`Az09._:~-${"y".repeat(119)}`));
    ok.end();
    assert.equal((await ok.waitEnd()).status, "completed");
  });

  it("refuses a second connection to an open stream with 409 STREAM_BUSY; the first is untouched", async () => {
    const c = await StreamClient.connect(url("busy"));
    c.event("a");
    const r = await refused(url("busy"));
    assert.equal(r.status, 409);
    assert.equal(r.body.error.code, "STREAM_BUSY");
    c.event("b");
    c.end();
    assert.equal((await c.waitEnd()).status, "completed");
    assert.deepEqual(c.outputs(), ["a", "b", "done"]);
  });

  it("a handshake that fails after the stream was opened leaves the id free for a retry", async () => {
    // A malformed WebSocket handshake: the function and id are fine, the key is not.
    const reply = await new Promise<string>((resolve, reject) => {
      const { hostname, port } = new URL(t.url);
      const s = connect(Number(port), hostname, () => {
        s.write(
          "GET /v1/functions/echo/streams/bad-handshake HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n" +
            "Connection: Upgrade\r\nSec-WebSocket-Key: not-a-key\r\nSec-WebSocket-Version: 13\r\n\r\n",
        );
      });
      let data = "";
      s.on("data", (c: Buffer) => (data += c.toString()));
      s.on("close", () => resolve(data));
      s.on("error", reject);
    });
    assert.match(reply, /^HTTP\/1\.1 400 /);
    await eventually(
      async () => {
        const s = await t.stream("echo", "bad-handshake");
        return s?.state !== "waiting" && s?.state !== "running";
      },
      5_000,
      "the stream to be withdrawn",
    );
    assert.equal(await t.stream("echo", "bad-handshake"), undefined, "not remembered as ended");
    const c = await StreamClient.connect(url("bad-handshake"));
    c.event("retry");
    c.end();
    await c.waitEnd();
    assert.deepEqual(c.outputs(), ["retry", "done"]);
  });

  it("refuses to reopen an ended stream with 409 STREAM_ENDED, not as a new stream", async () => {
    const c = await StreamClient.connect(url("ended-once"));
    c.event("a");
    c.end();
    await c.waitEnd();
    const r = await refused(url("ended-once"));
    assert.equal(r.status, 409);
    assert.equal(r.body.error.code, "STREAM_ENDED");
    assert.match(r.body.error.message, /already ended \(completed, reason end\)/);
    assert.equal((await t.stream("echo", "ended-once"))?.state, "ended", "still the ended stream, not a new one");
  });

  it("refuses an event for a stream that has ended with STREAM_ENDED (failed streams too)", async () => {
    const c = await StreamClient.connect(url("ended-late"));
    c.event("a");
    c.end();
    await c.waitEnd();
    const late = await call(`${t.url}/v1/functions/echo/streams/ended-late/events`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ data: "late" }),
    });
    assert.equal(late.status, 409);
    assert.equal(late.body.error?.code, "STREAM_ENDED");
    // A failed stream's id is refused just the same (an operator cancels it).
    const f = await StreamClient.connect(url("ended-failed"));
    const cancel = await call(`${t.url}/v1/functions/echo/streams/ended-failed?reason=test`, { method: "DELETE" });
    assert.equal(cancel.status, 200, JSON.stringify(cancel.body));
    const end = await f.waitEnd();
    assert.equal(end.status, "failed");
    const r = await refused(url("ended-failed"));
    assert.equal(r.body.error.code, "STREAM_ENDED");
    assert.match(r.body.error.message, /failed, reason error/);
  });

  it("the table refuses an event pushed on a handle of a stream that has ended with STREAM_ENDED", inProcessOnly(), async () => {
    const c = await StreamClient.connect(url("ended-held"));
    const table = t.embedded!.table;
    const stream = table.get("echo", "ended-held")!;
    c.event("a");
    c.end();
    await c.waitEnd();
    // A late event from any producer that still holds the stream (the table's own check).
    assert.throws(() => table.push(stream, "late", undefined, false, 6), { code: "STREAM_ENDED" });
  });

  it("refuses events after the end of input with STREAM_INPUT_ENDED while the handler finishes", async () => {
    const c = await StreamClient.connect(url("slow-end-1"));
    c.event("a", 1);
    c.end();
    c.event("late", 2);
    c.binary(new Uint8Array(3));
    const end = await c.waitEnd();
    assert.equal(end.status, "completed");
    assert.equal(end.events, 1);
    assert.deepEqual(c.outputs(), ["a", "done"]);
    const errors = c.errors();
    assert.deepEqual(
      errors.map((e) => e.code),
      ["STREAM_INPUT_ENDED", "STREAM_INPUT_ENDED"],
    );
    assert.equal(errors[0]!.seq, 2);
  });

  it("forgets ended ids after the retention window", notOnCluster("an id is reusable only after the server's 2-minute duplicate window as well"), async () => {
    const t2 = await startContractTarget({ "echo.ts": echo }, { endedRetentionMs: 150, sandbox });
    try {
      const first = await StreamClient.connect(`${t2.wsUrl}/v1/functions/echo/streams/reused`);
      first.end();
      await first.waitEnd();
      assert.equal((await refused(`${t2.wsUrl}/v1/functions/echo/streams/reused`)).body.error.code, "STREAM_ENDED");
      await sleep(200);
      const second = (await eventually(
        () => StreamClient.connect(`${t2.wsUrl}/v1/functions/echo/streams/reused`).catch(() => undefined),
        5_000,
        "the id to be usable again",
      ))!;
      second.event("again");
      second.end();
      await second.waitEnd();
      assert.deepEqual(second.outputs(), ["again", "done"]);
    } finally {
      await t2.close();
    }
  });
}));
