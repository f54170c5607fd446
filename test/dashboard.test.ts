import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import { startTestServer } from "./helpers/server.js";

const echo = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({ async *handler(events) { for await (const e of events) yield e; } });`;

describe("dashboard", () => {
  it("serves a live status page at / that reads /v1/status", async () => {
    const t = await startTestServer({ "echo.ts": echo });
    try {
      const res = await fetch(`${t.url}/`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type") ?? "", /^text\/html/);
      const html = await res.text();
      assert.match(html, /<title>streamfn<\/title>/);
      assert.match(html, /fetch\("\/v1\/status"/);
      // The fields the page reads are the ones the status document has.
      const s = (await (await fetch(`${t.url}/v1/status`)).json()) as Record<string, any>;
      assert.equal(typeof s.process.uptimeSeconds, "number");
      assert.equal(typeof s.process.rssBytes, "number");
      const v = s.functions[0].versions[0];
      for (const key of ["role", "liveStreams", "queuedStreams", "coldStarts"]) assert.ok(key in v, key);
      assert.equal(typeof v.slots.inUse, "number");
      assert.ok(Array.isArray(v.instances));
    } finally {
      await t.close();
    }
  });

  it("asks for the token when the server has one, and takes it from ?token=", async () => {
    const t = await startTestServer({ "echo.ts": echo }, { token: "s3cret" });
    try {
      assert.equal((await fetch(`${t.url}/`)).status, 401);
      assert.equal((await fetch(`${t.url}/?token=s3cret`)).status, 200);
      assert.equal((await fetch(`${t.url}/v1/status`, { headers: { authorization: "Bearer s3cret" } })).status, 200);
    } finally {
      await t.close();
    }
  });
});
