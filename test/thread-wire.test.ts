// The flat wire format of batches between the router's thread and a sandbox thread: every op
// comes out as it went in, across a real MessageChannel (structured clone, a transferred buffer).
import { strict as assert } from "node:assert";
import { MessageChannel } from "node:worker_threads";
import { once } from "node:events";
import { describe, it } from "node:test";
import type { FromSandbox, ToSandbox } from "../src/runtime/protocol.js";
import { decodeFromSandbox, decodeToSandbox, encodeFromSandbox, encodeToSandbox } from "../src/runtime/thread-wire.js";

async function across(wire: unknown[], transfer: ArrayBuffer[] = []): Promise<unknown[]> {
  const { port1, port2 } = new MessageChannel();
  const got = once(port2, "message");
  port1.postMessage(wire, transfer);
  const [msg] = (await got) as [unknown[]];
  port1.close();
  return msg;
}

// Absent optional fields read as undefined either way.
const plain = (ops: object[]): object[] => ops.map((op) => Object.fromEntries(Object.entries(op).filter(([, v]) => v !== undefined)));

describe("thread wire", () => {
  it("carries every router → sandbox op, events and acks flat, the rest as objects", async () => {
    const bytes = new Uint8Array([1, 2, 3]).buffer;
    const batch: ToSandbox[] = [
      { k: "open", s: 7, id: "ride-1" },
      { k: "ev", s: 7, d: '{"data":{"x":1}}', q: 1, t: 12.5, e: 1 },
      { k: "ev", s: 7, d: bytes, q: 2, t: 13.25, b: 1 },
      { k: "ev", s: 8, d: { x: 2 }, q: 3, t: 14 },
      { k: "ack", s: 7, n: 4 },
      { k: "end", s: 7, r: "completed" as never },
      { k: "kill", s: 8, e: { code: "STREAM_CANCELLED", message: "by an operator" } },
      { k: "ping", t: 1 },
      { k: "stop" },
    ];
    const wire = encodeToSandbox(batch);
    assert.equal(wire.filter((x) => typeof x === "object" && x !== null && "k" in x).length, 5, "open, end, kill, ping and stop stay objects");
    const out = decodeToSandbox(await across(wire, [bytes]));
    assert.equal(bytes.byteLength, 0, "the buffer was transferred, not copied");
    const ev = out[2] as { d: ArrayBuffer };
    assert.deepEqual([...new Uint8Array(ev.d)], [1, 2, 3]);
    assert.deepEqual(plain(out.map((op, i) => (i === 2 ? { ...op, d: "bytes" } : op))), plain(batch.map((op, i) => (i === 2 ? { ...op, d: "bytes" } : op))));
  });

  it("carries every sandbox → router op, outputs and pulls flat", async () => {
    const batch: FromSandbox[] = [
      { k: "ready", options: { concurrency: 2 } as never },
      { k: "pull", s: 3, n: 2 },
      { k: "out", s: 3, d: '{"y":1}', t: 99.5 },
      { k: "out", s: 3, d: new Uint8Array([9, 8]), t: 0 },
      { k: "log", s: 3, l: "info" as never, m: "seen", t: 5, x: 1 },
      { k: "done", s: 3 },
      { k: "pong", t: 2 },
    ];
    const out = decodeFromSandbox(await across(encodeFromSandbox(batch)));
    assert.deepEqual(plain(out), plain(batch));
  });
});
