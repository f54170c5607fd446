// The envelope scan that lets the router's thread judge an event without parsing it: it may say
// "parse it" for anything, but a verdict of valid (with a seq or none) must never be given for
// text that JSON.parse plus the envelope check would refuse or read differently. Checked against
// the real parser over hand-picked edge cases and a seeded stream of mutated envelopes, then
// end to end over a WebSocket on the thread tier (where the scan is used) and the inline tier.
import { strict as assert } from "node:assert";
import { writeFile } from "node:fs/promises";
import { request } from "node:http";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseEnvelope } from "../src/gateway/envelope.js";
import { kParseIt, scanEventEnvelope } from "../src/gateway/envelope-scan.js";
import { eventually, startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";
import { call, NdjsonStream, SseClient } from "./helpers/http-client.js";
import { StreamClient } from "./helpers/ws-client.js";

/** What the full path makes of the text: the seq (0: none), or undefined when it refuses it or it is an end. */
function reference(text: string): number | undefined {
  try {
    const env = parseEnvelope(text);
    return env.end ? undefined : (env.seq ?? 0);
  } catch {
    return undefined;
  }
}

function check(text: string): number {
  const verdict = scanEventEnvelope(Buffer.from(text, "utf8"));
  if (verdict !== kParseIt) assert.equal(verdict, reference(text), `scan judged ${JSON.stringify(text)} valid with seq ${verdict}`);
  return verdict;
}

describe("envelope scan", () => {
  it("takes the common shapes without a parse, with the seq the parser reads", () => {
    assert.equal(check('{"data":1}'), 0);
    assert.equal(check('{"data":{"a":[1,-2.5e+3,true,false,null,"x\\"y\\\\\\u00e9"]},"seq":42}'), 42);
    assert.equal(check('{"seq":7,"data":"é ü \u2028 😀"}'), 7);
    assert.equal(check(' \n{ "data" : [ ] , "seq" : 999999999999999 } \t'), 999999999999999);
    assert.equal(check('{"data":{}}'), 0);
  });

  it("leaves invalid text, end messages and unusual spellings to the parser", () => {
    const cases = [
      "",
      "garbage",
      "[]",
      "null",
      '{"end":true}',
      '{"data":1,"end":true}',
      '{"data":1,"x":2}',
      '{"seq":1}',
      '{"data":1,"data":2}',
      '{"data":1,"seq":1,"seq":2}',
      '{"d\\u0061ta":1}',
      '{"data":1,"seq":0}',
      '{"data":1,"seq":-1}',
      '{"data":1,"seq":1.5}',
      '{"data":1,"seq":1e3}',
      '{"data":1,"seq":"1"}',
      '{"data":1,"seq":01}',
      '{"data":1,"seq":9999999999999999}',
      '{"data":01}',
      '{"data":1.}',
      '{"data":.5}',
      '{"data":1e}',
      '{"data":-}',
      '{"data":tru}',
      '{"data":nul}',
      '{"data":"a\tb"}',
      '{"data":"\\x"}',
      '{"data":"\\u12g4"}',
      '{"data":"open}',
      '{"data":[1,]}',
      '{"data":[1 2]}',
      '{"data":{"a" 1}}',
      '{"data":{"a":1,}}',
      '{"data":{1:2}}',
      '{"data":1',
      '{"data":1}}',
      '{"data":1} x',
      '{"data":NaN}',
      '{"data":Infinity}',
      "{'data':1}",
      '\ufeff{"data":1}',
      `{"data":${"[".repeat(100)}${"]".repeat(100)}}`,
    ];
    for (const text of cases) assert.equal(check(text), kParseIt, `scan should leave ${JSON.stringify(text)} to the parser`);
  });

  it("never judges valid what the parser refuses, over 50,000 mutated envelopes", () => {
    let state = 12345;
    const random = (): number => ((state = (state * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const seeds = [
      '{"data":{"v":1,"readings":[1.5,-2,3e2],"tags":["a","b"],"ok":true,"none":null},"seq":12}',
      '{"data":"t\\"e\\\\x\\u00e9t","seq":3}',
      '{"data":[[],{},[{"a":[0,-0.0,1E-2]}]]}',
      '{ "seq" : 5 , "data" : false }',
    ];
    const alphabet = '{}[]":,.-+eE0123456789 \\u"truefalsenull\tax';
    let judged = 0;
    for (let n = 0; n < 50_000; n++) {
      const chars = [...seeds[n % seeds.length]!];
      for (let m = 1 + Math.floor(random() * 3); m > 0; m--) {
        const at = Math.floor(random() * (chars.length + 1));
        const op = random();
        const ch = alphabet[Math.floor(random() * alphabet.length)]!;
        if (op < 0.33) chars.splice(at, 1);
        else if (op < 0.66) chars.splice(at, 0, ch);
        else chars[Math.min(at, chars.length - 1)] = ch;
      }
      if (check(chars.join("")) !== kParseIt) judged++;
    }
    // Most mutations break the text; enough survive that the valid side is exercised too.
    assert.ok(judged > 1000, `only ${judged} mutated envelopes were judged valid`);
  });
});

const echo = (sandbox: string): string => `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  sandbox: "${sandbox}",
  async *handler(events, ctx) {
    for await (const e of events) yield { e, seq: ctx.event.seq };
  },
});`;

for (const tier of ["thread", "inline"] as const) {
  describe(`envelopes over WebSocket, NDJSON and HTTP batches on the ${tier} tier`, () => {
    let t: TestServer;
    before(async () => {
      t = await startTestServer({ "echo.ts": echo(tier) });
    });
    after(() => t.close());

    it("delivers scanned and parsed envelopes alike, drops retries, and names what is wrong", async () => {
      const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/echo/streams/s-${tier}`);
      c.send('{"data":{"a":[1,"x"]}}'); // seq 1 (arrival)
      c.send('{"data":"two","seq":5}');
      c.send('{"data":"retry","seq":5}'); // at or below the last seq: dropped
      c.send('{"d\\u0061ta":"escaped key","seq":6}'); // valid, but only the parser reads it
      c.send('{"data":[1,]}');
      c.send('{"data":1,"seq":0}');
      c.send('{"data":1,"extra":2}');
      c.send(' { "seq" : 7 , "data" : null } ');
      c.end();
      const end = await c.waitEnd();
      assert.equal(end.status, "completed");
      const outs = c.records.filter((r) => r.type === "output").map((r) => r.data);
      assert.deepEqual(outs, [
        { e: { a: [1, "x"] }, seq: 1 },
        { e: "two", seq: 5 },
        { e: "escaped key", seq: 6 },
        { e: null, seq: 7 },
      ]);
      const errors = c.records.filter((r) => r.type === "error").map((r) => r.code);
      assert.deepEqual(errors, ["INVALID_JSON", "INVALID_SEQ", "INVALID_ENVELOPE"]);
      assert.equal(end.events, 4);
    });

    it("does the same for a streamed NDJSON body, naming each bad line", async () => {
      const nd = new NdjsonStream(`${t.url}/v1/functions/echo/streams/nd-${tier}`);
      await nd.write(
        '{"data":{"a":[1,"x"]}}',
        '{"data":"two","seq":5}',
        '{"data":"retry","seq":5}',
        '{"d\\u0061ta":"escaped key","seq":6}',
        '{"data":[1,]}',
        '{"data":1,"seq":0}',
        '{"data":1,"extra":2}',
        ' { "seq" : 7 , "data" : null } \r',
      );
      nd.end();
      const end = await nd.waitEnd();
      assert.equal(end.status, "completed");
      assert.deepEqual(nd.outputs(), [
        { e: { a: [1, "x"] }, seq: 1 },
        { e: "two", seq: 5 },
        { e: "escaped key", seq: 6 },
        { e: null, seq: 7 },
      ]);
      const errors = nd.records.filter((r) => r.type === "error").map((r) => `${r.code} line ${r.line}`);
      assert.deepEqual(errors, ["INVALID_JSON line 5", "INVALID_SEQ line 6", "INVALID_ENVELOPE line 7"]);
      assert.equal(end.events, 4);
    });

    it("judges posted batches whole, scanned or parsed, and takes nothing of a batch with a bad line", async () => {
      const url = `${t.url}/v1/functions/echo/streams/batch-${tier}`;
      const post = (type: string, body: string) => call(`${url}/events`, { method: "POST", headers: { "content-type": type }, body });
      const ok = await post("application/x-ndjson", '{"data":{"a":[1,"x"]}}\n{"d\\u0061ta":"escaped key","seq":6}\n{"seq":7,"data":"seven"}\n');
      assert.deepEqual(ok.body, { accepted: 3, duplicates: 0, lastSeq: 7 });
      const bad = await post("application/x-ndjson", '{"data":"eight","seq":8}\n{"data":[1,]}\n');
      assert.equal(bad.status, 400);
      assert.equal(bad.body.error?.code, "INVALID_JSON");
      assert.match(bad.body.error!.message, /^line 2: .*nothing of this batch was taken/);
      const retry = await post("application/x-ndjson", '{"data":"again","seq":7}\n{"data":"eight","seq":8}\n');
      assert.deepEqual(retry.body, { accepted: 1, duplicates: 1, lastSeq: 8 });
      const one = await post("application/json", '{"data":{"n":9},"seq":9}');
      assert.deepEqual(one.body, { accepted: 1, duplicates: 0, lastSeq: 9 });
      const badOne = await post("application/json", '{"data":1,"seq":1.5}');
      assert.equal(badOne.body.error?.code, "INVALID_SEQ");
      assert.equal((await call(`${url}/end`, { method: "POST" })).status, 202);
      const sse = new SseClient(`${url}/outputs`);
      await sse.waitEnd();
      assert.deepEqual(
        sse.outputs().map((r) => r.data),
        [
          { e: { a: [1, "x"] }, seq: 1 },
          { e: "escaped key", seq: 6 },
          { e: "seven", seq: 7 },
          { e: "eight", seq: 8 },
          { e: { n: 9 }, seq: 9 },
        ],
      );
    });
  });
}

describe("a batch posted across a redeploy from the thread tier to the inline tier", () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ "flip.ts": echo("thread") }, { watch: true });
  });
  after(() => t.close());

  const version = async (): Promise<string | undefined> => {
    const status = (await (await fetch(`${t.url}/v1/status`)).json()) as { functions: { name: string; version: string }[] };
    return status.functions.find((f) => f.name === "flip")?.version;
  };

  it("still hands the handler the values: the scan judged the body for a tier that no longer takes text", async () => {
    const url = `${t.url}/v1/functions/flip/streams/across`;
    const req = request(`${url}/events`, { method: "POST", headers: { "content-type": "application/x-ndjson" } });
    const answer = new Promise<{ status: number | undefined; body: unknown }>((resolve, reject) => {
      req.on("response", (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode, body: JSON.parse(text) }));
      });
      req.on("error", reject);
    });
    // The first line is sent while the function is on the thread tier: the request is judged
    // for that tier, and the stream opens once the body is complete.
    req.write('{"data":"one","seq":1}\n');
    const before = await version();
    await writeFile(join(t.dir, "flip.ts"), echo("inline"));
    await eventually(async () => ((await version()) !== before ? true : undefined), 15_000, "the inline version to be deployed");
    req.end('{"data":{"two":2},"seq":2}\n');
    assert.deepEqual(await answer, { status: 202, body: { accepted: 2, duplicates: 0, lastSeq: 2 } });
    assert.equal((await call(`${url}/end`, { method: "POST" })).status, 202);
    const sse = new SseClient(`${url}/outputs`);
    await sse.waitEnd();
    assert.deepEqual(
      sse.outputs().map((r) => r.data),
      [
        { e: "one", seq: 1 },
        { e: { two: 2 }, seq: 2 },
      ],
    );
  });
});
