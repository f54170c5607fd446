import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { StreamfnError } from "../api/errors.js";

const require = createRequire(import.meta.url);

/** The charting library's files the page loads, served from the installed package (never a CDN). */
const kFiles: Record<string, string> = {
  "uPlot.iife.min.js": "text/javascript; charset=utf-8",
  "uPlot.min.css": "text/css; charset=utf-8",
};

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

/**
 * `GET /dashboard/assets/uplot-<version>/<file>`: uPlot's dist files, read from its package
 * in node_modules once and kept. The version is in the path, so a browser may keep a file for
 * a year (an upgrade changes the path); the ETag answers revalidations with 304.
 */
export class DashboardAssets {
  readonly version: string;
  readonly #dir: string;
  readonly #cache = new Map<string, Asset>();

  constructor() {
    const pkgPath = require.resolve("uplot/package.json");
    this.version = (JSON.parse(readFileSync(pkgPath, "utf8")) as { version: string }).version;
    this.#dir = join(dirname(pkgPath), "dist");
  }

  /** The URL path prefix the page loads the files from. */
  get prefix(): string {
    return `/dashboard/assets/uplot-${this.version}/`;
  }

  /** Paths of every asset, for route registration. */
  paths(): string[] {
    return Object.keys(kFiles).map((f) => this.prefix + f);
  }

  serve(req: IncomingMessage, res: ServerResponse, pathname: string): void {
    const file = pathname.slice(this.prefix.length);
    const type = kFiles[file];
    if (!pathname.startsWith(this.prefix) || type === undefined) {
      throw new StreamfnError("NOT_FOUND", `no dashboard asset at ${pathname}`);
    }
    let asset = this.#cache.get(file);
    if (!asset) {
      const body = readFileSync(join(this.#dir, file));
      asset = { body, type, etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"` };
      this.#cache.set(file, asset);
    }
    const headers = { "cache-control": "public, max-age=31536000, immutable", etag: asset.etag, "x-content-type-options": "nosniff" };
    if (req.headers["if-none-match"] === asset.etag) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    res.writeHead(200, { ...headers, "content-type": asset.type, "content-length": asset.body.length });
    res.end(asset.body);
  }
}
