// The envelope scan that lets the router's thread judge an event without parsing it: it may say
// "parse it" for anything, but a verdict of valid (with a seq or none) must never be given for
// text that JSON.parse plus the envelope check would refuse or read differently. Checked against
// the real parser over hand-picked edge cases and a seeded stream of mutated envelopes, then
// end to end over a WebSocket on the thread tier (where the scan is used) and the inline tier.
import { strict as assert } from "node:assert";
import { after, before, describe, it } from "node:test";
import { parseEnvelope } from "../src/gateway/envelope.js";
import { kParseIt, scanEventEnvelope } from "../src/gateway/envelope-scan.js";
import { startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";
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
  describe(`WebSocket envelopes on the ${tier} tier`, () => {
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
  });
}
