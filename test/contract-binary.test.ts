// Contract: binary events reach the handler as exact bytes (moved to the instance, not copied),
// and binary outputs come back as binary frames.
import { strict as assert } from "node:assert";
import { createHash, randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { fnSource } from "./helpers/contract-util.js";
import { forEachSandbox, inProcessOnly, onlyIn, notOnCluster, startContractTarget } from "./helpers/contract-target.js";
import type { ContractTarget } from "./helpers/contract-target.js";
import { eventually } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";
import type { Rec } from "./helpers/ws-client.js";

// Reports what it got (size, hash, whether it owns its memory) and echoes the bytes back.
const bytes = fnSource(
  `{
  maxEventBytes: 2 * 1024 * 1024,
  async *handler(events) {
    for await (const e of events) {
      if (!(e instanceof Uint8Array)) throw new TypeError("expected bytes, got " + typeof e);
      yield {
        len: e.byteLength,
        sha256: createHash("sha256").update(e).digest("hex"),
        ownsBuffer: e.byteOffset === 0 && e.buffer.byteLength === e.byteLength,
      };
      yield e;
    }
  },
}`,
  `import { createHash } from "node:crypto";`,
);

const sha256 = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

const kSizes = [1, 100, 4095, 64 * 1024, 64 * 1024 + 1, 1024 * 1024];

forEachSandbox((sandbox) =>
describe(`contract: binary payloads [${sandbox} sandbox]`, () => {
  let t: ContractTarget;
  before(async () => {
    t = await startContractTarget({ "bytes.ts": bytes }, { sandbox });
  });
  after(() => t.close());

  it(`hands the handler exact bytes for sizes ${kSizes.join(", ")} and echoes them as binary frames`, notOnCluster("a 1 MiB event exceeds NATS's default max_payload (1 MiB with headers)"), async () => {
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/bytes/streams/sizes`);
    const sent = kSizes.map((n) => new Uint8Array(randomBytes(n)));
    for (const b of sent) c.binary(b);
    c.end();
    const end = await c.waitEnd(15_000);
    assert.equal(end.status, "completed", JSON.stringify(end));
    assert.equal(end.events, kSizes.length);

    const reports = c.records.filter((r) => r.type === "output" && !r.binary).map((r) => r.data as Record<string, unknown>);
    assert.deepEqual(
      reports,
      sent.map((b) => ({ len: b.byteLength, sha256: sha256(b), ownsBuffer: true })),
    );
    // Each binary output is announced by its numbered record, then comes as one binary frame.
    const recs = c.records.filter((r) => r.type === "output" || r.type === "binary-frame");
    const echoed: Uint8Array[] = [];
    for (let i = 0; i < recs.length; i++) {
      const r: Rec = recs[i]!;
      if (r.type === "output" && r.binary) {
        assert.equal(recs[i + 1]?.type, "binary-frame", "a binary output record is followed by its frame");
        echoed.push(recs[i + 1]!.bytes as Uint8Array);
      }
    }
    assert.equal(echoed.length, sent.length);
    for (let i = 0; i < sent.length; i++) {
      assert.equal(Buffer.compare(Buffer.from(echoed[i]!), Buffer.from(sent[i]!)), 0, `echo of ${kSizes[i]} bytes`);
    }
    const ns = c.records.filter((r) => r.type === "output").map((r) => r.n);
    assert.deepEqual(ns, Array.from({ length: sent.length * 2 }, (_, i) => i + 1));
  });

  it("interleaves binary and JSON events in arrival order", async () => {
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/bytes/streams/mixed`);
    c.binary(new Uint8Array([1, 2, 3]));
    c.event("not bytes");
    c.end();
    const end = await c.waitEnd();
    assert.equal(end.status, "failed");
    assert.equal((end.error as { code: string }).code, "HANDLER_ERROR");
    assert.match((end.error as { message: string }).message, /expected bytes, got string/);
    assert.deepEqual(c.outputs()[0], { len: 3, sha256: sha256(new Uint8Array([1, 2, 3])), ownsBuffer: true });
  });

  it("moves an event's ArrayBuffer to the instance rather than copying it", { skip: inProcessOnly().skip || onlyIn("thread", sandbox, "a process shares no memory: bytes are copied over IPC").skip }, async () => {
    // Through the stream table directly, to see the sender's side of the hand-over: a
    // transferred ArrayBuffer is detached (length 0) on the sending thread once it has been posted.
    const table = t.embedded!.table;
    const outputs: unknown[] = [];
    const stream = await table.open("bytes", "transfer-check", {
      output: (_n, json) => {
        if (json !== undefined) outputs.push(JSON.parse(json));
      },
      end: () => {},
    });
    const payload = new Uint8Array(randomBytes(256 * 1024));
    const hash = sha256(payload);
    const ab = payload.buffer as ArrayBuffer;
    table.push(stream, ab, undefined, true, ab.byteLength);
    await eventually(() => outputs.length > 0, 10_000, "the handler's report");
    assert.equal(ab.byteLength, 0, "the router's copy of the buffer was detached by the transfer");
    assert.deepEqual(outputs[0], { len: 256 * 1024, sha256: hash, ownsBuffer: true });
    table.endInput(stream, "end");
    await eventually(() => stream.state === "done", 5_000, "the stream to end");
  });
}));
