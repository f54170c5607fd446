import { strict as assert } from "node:assert";
import { after, before, describe, it } from "node:test";
import { startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";

const envProbe = (sandbox: string): string => `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  sandbox: "${sandbox}",
  async handler(events) {
    for await (const _ of events) {}
    return {
      token: process.env.STREAMFN_TOKEN ?? null,
      nats: process.env.STREAMFN_NATS ?? null,
      own: Object.keys(process.env).filter((k) => k.toUpperCase().startsWith("STREAMFN_")),
      plain: process.env.SANDBOX_ENV_PLAIN ?? null,
    };
  },
});`;

describe("the environment a function sees", () => {
  let t: TestServer;
  const saved = { ...process.env };
  before(async () => {
    // As a server started with its token and NATS credentials in the environment.
    process.env.STREAMFN_TOKEN = "secret-admin-token";
    process.env.STREAMFN_NATS = "nats://user:password@127.0.0.1:4222";
    process.env.SANDBOX_ENV_PLAIN = "visible";
    t = await startTestServer({ "thread-env.ts": envProbe("thread"), "process-env.ts": envProbe("process") });
  });
  after(async () => {
    await t.close();
    for (const k of ["STREAMFN_TOKEN", "STREAMFN_NATS", "SANDBOX_ENV_PLAIN"]) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  });

  for (const fn of ["thread-env", "process-env"]) {
    it(`${fn}: the server's STREAMFN_* settings are not visible to the handler; other variables are`, async () => {
      const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/${fn}/streams`);
      c.event(1);
      c.end();
      const end = await c.waitEnd(10_000);
      assert.equal(end.status, "completed", JSON.stringify(end));
      assert.deepEqual(c.outputs(), [{ token: null, nats: null, own: [], plain: "visible" }]);
    });
  }
});
