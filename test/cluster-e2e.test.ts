import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { kSkipWithoutNats } from "./helpers/nats-server.js";
import { TestCluster } from "./helpers/cluster-procs.js";
import { StreamClient } from "./helpers/ws-client.js";
import { eventually, startTestServer } from "./helpers/server.js";

// Deterministic (outputs depend only on the input events), so a replay regenerates the same outputs.
const kRunningSum = `import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  idleTimeoutMs: 60_000,
  async *handler(events) {
    let sum = 0;
    for await (const e of events) {
      sum += e.x;
      yield { x: e.x, sum };
    }
    yield { total: sum };
  },
});
`;
const kFunctions = { "sum.ts": kRunningSum };

async function runStream(wsUrl: string, id: string, xs: number[]): Promise<unknown[]> {
  const c = await StreamClient.connect(`${wsUrl}/v1/functions/sum/streams/${id}`);
  xs.forEach((x, i) => c.event({ x }, i + 1));
  c.end();
  const end = await c.waitEnd(30_000);
  assert.equal(end.status, "completed", JSON.stringify(end));
  c.close();
  return c.outputs();
}

describe("cluster end to end: nats-server, workers and gateways as processes", { skip: kSkipWithoutNats }, () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await TestCluster.start(kFunctions);
  });
  after(async () => {
    await cluster?.close();
  });

  it("one stream through one gateway and one worker: the same outputs as embedded mode", async () => {
    const xs = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    const embedded = await startTestServer(kFunctions);
    let expected: unknown[];
    try {
      expected = await runStream(embedded.wsUrl, "a-1", xs);
    } finally {
      await embedded.close();
    }
    await cluster.worker("w1");
    const gw = await cluster.gateway();
    const got = await runStream(gw.wsUrl, "a-1", xs);
    assert.deepEqual(got, expected);
    assert.equal(got.length, 11);
  });
});
