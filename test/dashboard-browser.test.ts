import { strict as assert } from "node:assert";
import { mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { kSkipWithoutChromium, launchBrowser, openPage } from "./helpers/browser.js";
import { startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";

// The page functions below run in the browser; this file is compiled without the DOM's types.
declare const document: any;
declare const window: any;

const healthy = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  async *handler(events, ctx) {
    for await (const e of events) {
      ctx.log.info("got " + JSON.stringify(e));
      yield { echo: e };
    }
  },
});`;

const failing = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  async *handler(events) {
    for await (const e of events) {
      if (e === "boom") throw new Error("boom on purpose");
      yield e;
    }
  },
});`;

// Ends on an idle timeout and keeps no instance warm: a cold start, then scale to zero.
const scales = `
import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  idleTimeoutMs: 1500,
  keepAliveMs: 100,
  async *handler(events) {
    for await (const e of events) yield e;
  },
});`;

/** Where the screenshot goes: os.tmpdir(), or docs/dashboard.png with STREAMFN_DASHBOARD_DOCS=1. */
const kScreenshot = process.env.STREAMFN_DASHBOARD_DOCS === "1"
  ? resolve(process.cwd(), "docs/dashboard.png")
  : join(tmpdir(), "streamfn-dashboard.png");

const row = (page: Page, fn: string, id: string) => page.locator(`#streams tbody tr[data-fn="${fn}"][data-id="${id}"]`);

async function waitForData(page: Page, fn: string, key: string, atLeast: number): Promise<void> {
  await page.waitForFunction(
    ([f, k, n]) => Number(document.querySelector(`article.fn[data-fn="${f}"] .instances-chart`)?.dataset[k as string] ?? -1) >= (n as number),
    [fn, key, atLeast] as const,
    { timeout: 20_000 },
  );
}

describe("dashboard in a real browser", { skip: kSkipWithoutChromium }, () => {
  let browser: Browser;
  before(async () => {
    browser = await launchBrowser();
  });
  after(() => browser?.close());

  it("shows streams live and ended, a failure's code, a stream's outputs and log lines, cold starts and scale to zero, and cancels", async (t) => {
    const server: TestServer = await startTestServer({ "healthy.ts": healthy, "failing.ts": failing, "scales.ts": scales });
    const clients: StreamClient[] = [];
    try {
      const { page, errors } = await openPage(browser, `${server.url}/`);
      await page.waitForSelector('article.fn[data-fn="healthy"]');
      assert.equal(await page.locator("#login").isHidden(), true, "no token: no login field");
      assert.match(await page.locator('article.fn[data-fn="scales"] .opts').innerText(), /idle 1.50 s .*keep-alive 100 ms/);

      const live = await StreamClient.connect(`${server.wsUrl}/v1/functions/healthy/streams/h-live`);
      clients.push(live);
      live.event("first");
      await live.waitFor((r) => r.type === "output");

      const done = await StreamClient.connect(`${server.wsUrl}/v1/functions/healthy/streams/h-1`);
      clients.push(done);
      for (const n of [1, 2, 3]) done.event(n);
      done.end();
      await done.waitEnd();

      const failed = await StreamClient.connect(`${server.wsUrl}/v1/functions/failing/streams/f-1`);
      clients.push(failed);
      failed.event("ok");
      failed.event("boom");
      assert.equal(((await failed.waitEnd()).error as { code: string }).code, "HANDLER_ERROR");

      // The scaling stream is kept busy until the chart has sampled its instance, then idles out.
      const scaling = await StreamClient.connect(`${server.wsUrl}/v1/functions/scales/streams/s-1`);
      clients.push(scaling);
      const peak = () => page.evaluate(() => Number(document.querySelector('article.fn[data-fn="scales"] .instances-chart')?.dataset.peak ?? 0));
      // Events every 100 ms, well inside the idle timeout, whatever the page's checks take.
      let n = 0;
      const keepBusy = setInterval(() => scaling.event(++n), 100);
      try {
        await waitForData(page, "scales", "peak", 1);
      } finally {
        clearInterval(keepBusy);
      }
      assert.equal((await scaling.waitEnd()).reason, "idle");

      // The table: right states and counts, live streams first, the failure's code.
      await page.waitForSelector('#streams tbody tr[data-id="s-1"][data-state="completed"]');
      assert.equal(await row(page, "healthy", "h-live").getAttribute("data-state"), "running");
      assert.equal(await page.locator("#streams tbody tr").first().getAttribute("data-id"), "h-live");
      assert.equal(await row(page, "healthy", "h-live").locator(".events").innerText(), "1");
      assert.equal(await row(page, "healthy", "h-1").getAttribute("data-state"), "completed");
      assert.equal(await row(page, "healthy", "h-1").locator(".events").innerText(), "3");
      assert.equal(await row(page, "healthy", "h-1").locator(".outputs").innerText(), "3");
      assert.equal(await row(page, "healthy", "h-1").locator(".end").innerText(), "end");
      assert.equal(await row(page, "failing", "f-1").getAttribute("data-state"), "failed");
      assert.equal(await row(page, "failing", "f-1").locator(".end").innerText(), "HANDLER_ERROR");
      assert.equal(await page.locator('article.fn[data-fn="failing"] .failures li[data-code="HANDLER_ERROR"] b').innerText(), "1");

      // Filters: by function, by state.
      await page.selectOption("#filter-fn", "failing");
      assert.deepEqual(await page.locator("#streams tbody tr").evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-id"))), ["f-1"]);
      await page.selectOption("#filter-fn", "");
      await page.selectOption("#filter-state", "live");
      assert.deepEqual(await page.locator("#streams tbody tr").evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-id"))), ["h-live"]);
      await page.selectOption("#filter-state", "");

      // The instance chart saw the cold start and the scale to zero.
      await waitForData(page, "scales", "scaleToZero", 1);
      await waitForData(page, "scales", "coldStarts", 1);
      const series = await page.evaluate(() => window.dashboard.history.scales as { instances: number | null; coldStarts: number }[]);
      assert.ok(series.some((s) => s.coldStarts > 0), "a sample counts the cold start");
      assert.equal(series[series.length - 1]!.instances, 0, "scaled to zero");

      // An ended stream: its outputs, its log lines, its timeline.
      await row(page, "healthy", "h-1").click();
      await page.waitForSelector('#detail[data-id="h-1"][data-state="completed"]');
      await page.waitForFunction(() => (document.querySelector("#detail .outputs")?.textContent as string | undefined)?.includes('#3  {"echo":3}'));
      await page.waitForFunction(() => document.querySelector("#detail .logs")?.textContent?.includes("got 3"));
      const timeline = await page.locator("#detail .timeline").innerText();
      assert.match(timeline, /bound to instance #\d+ (at once|after .*): warm/);
      assert.match(timeline, /3 events/);
      assert.match(timeline, /completed after .* \(reason end\)/);
      assert.equal(await page.locator("#detail .cancel").count(), 0, "no cancel button on an ended stream");

      // A live stream: its log lines and outputs follow as they happen.
      await row(page, "healthy", "h-live").click();
      await page.waitForSelector('#detail[data-id="h-live"][data-state="running"]');
      assert.match(await page.locator("#detail .timeline").innerText(), /bound to instance #\d+ (at once|after .*): a cold start \(the instance took [\d.]+ m?s to start\)/);
      await page.waitForFunction(() => document.querySelector("#detail .logs")?.textContent?.includes('got "first"'));
      live.event("second");
      await page.waitForFunction(() => document.querySelector("#detail .logs")?.textContent?.includes('got "second"'));
      await page.waitForFunction(() => (document.querySelector("#detail .outputs")?.textContent as string | undefined)?.includes('#2  {"echo":"second"}'));
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({ path: kScreenshot });
      t.diagnostic(`dashboard screenshot: ${kScreenshot}`);

      await page.click("#detail .cancel");
      await page.waitForSelector('#detail[data-id="h-live"][data-state="failed"]');
      assert.match(await page.locator("#detail .timeline").innerText(), /STREAM_CANCELLED/);
      assert.equal(((await live.waitEnd()).error as { code: string }).code, "STREAM_CANCELLED");
      await page.waitForFunction(() => document.querySelector('#streams tbody tr[data-id="h-live"] .end')?.textContent === "STREAM_CANCELLED");
      assert.deepEqual(errors, []);
    } finally {
      for (const c of clients) c.close();
      await server.close();
    }
  });

  it("asks for the token with a login field, shows an error for a wrong one and the data for the right one", async () => {
    const server = await startTestServer({ "healthy.ts": healthy }, { token: "s3cret" });
    try {
      const { page, errors } = await openPage(browser, `${server.url}/`);
      await page.waitForSelector("#login:not([hidden])");
      assert.equal(await page.locator("#app").isHidden(), true);
      await page.fill("#token", "wrong");
      await page.click("#login-form button");
      await page.waitForFunction(() => /refused/.test(document.querySelector("#login-error")?.textContent ?? ""));
      assert.match(await page.locator("#login-error").innerText(), /UNAUTHORIZED/);
      await page.fill("#token", "s3cret");
      await page.click("#login-form button");
      await page.waitForSelector('article.fn[data-fn="healthy"]');
      assert.equal(await page.locator("#login").isHidden(), true);
      // The token is kept for the tab: a reload goes straight to the data.
      await page.reload();
      await page.waitForSelector('article.fn[data-fn="healthy"]');
      assert.deepEqual(errors, []);
    } finally {
      await server.close();
    }
  });

  it("shows a refused cancel (403) as a message and leaves the stream running", async () => {
    // Reachable from other machines and no token: the control API refuses changes with 403.
    const server = await startTestServer({ "healthy.ts": healthy }, { exposed: true });
    const live = await StreamClient.connect(`${server.wsUrl}/v1/functions/healthy/streams/keep`);
    try {
      live.event(1);
      await live.waitFor((r) => r.type === "output");
      const { page } = await openPage(browser, `${server.url}/`);
      await row(page, "healthy", "keep").click();
      await page.click("#detail .cancel");
      await page.waitForFunction(() => /403/.test(document.querySelector("#detail .cancel-msg")?.textContent ?? ""));
      assert.match(await page.locator("#detail .cancel-msg").innerText(), /Not allowed \(403\): FORBIDDEN/);
      assert.equal(server.server.table.get("healthy", "keep")?.state, "running");
    } finally {
      live.close();
      await server.close();
    }
  });
});

// Keeps the docs path's folder around when writing the docs image.
await mkdir(dirname(kScreenshot), { recursive: true });
