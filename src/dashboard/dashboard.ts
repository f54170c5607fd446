import type { Gateway } from "../gateway/gateway.js";
import { DashboardAssets } from "./assets.js";
import { DashboardFeed } from "./feed.js";
import { dashboardPage } from "./page.js";
import { DashboardSampler } from "./sampler.js";
import type { SamplerOptions, SamplerSource } from "./sampler.js";

export interface Dashboard {
  sampler: DashboardSampler;
  feed: DashboardFeed;
  close(): void;
}

/**
 * The embedded server's dashboard (docs/operations.md, "Dashboard"):
 * - `GET /`: the page. It holds no data, so it is served without the token: a browser
 *   without one gets the page and its login field; everything it shows comes from routes
 *   that go through the gateway's token check;
 * - `GET /dashboard/assets/uplot-<version>/…`: the charting library, from node_modules;
 * - `GET /v1/dashboard/feed`: the live data, as server-sent events (token checked).
 */
export function registerDashboard(gateway: Gateway, source: SamplerSource, options: SamplerOptions = {}): Dashboard {
  const assets = new DashboardAssets();
  const sampler = new DashboardSampler(source, options);
  const feed = new DashboardFeed(sampler);
  const page = Buffer.from(dashboardPage(assets.prefix));
  gateway.route(
    "GET",
    "/",
    (_req, res) => {
      res.writeHead(200, {
        "content-type": "text/html; charset=utf-8",
        "content-length": page.length,
        "cache-control": "no-cache",
        "x-content-type-options": "nosniff",
        "x-frame-options": "DENY",
      });
      res.end(page);
    }
  );
  // One pattern for every file: an unknown name (or another package version) is a 404 there.
  gateway.route("GET", "/dashboard/assets/:package/:file", (req, res, url) => assets.serve(req, res, url.pathname));
  gateway.route("GET", "/v1/dashboard/feed", (_req, res) => feed.open(res));
  return { sampler, feed, close: () => feed.close() };
}
