import { StreamfnError } from "../api/errors.js";
import type { Gateway } from "../gateway/gateway.js";
import { sendJson } from "../gateway/http-util.js";
import type { Registry } from "../registry/registry.js";
import type { StreamLogSnapshot, StreamTable } from "../router/stream-table.js";
import { LogFollower } from "./log-followers.js";
import type { LogEndRecord, LogFollowers, LogRecord } from "./log-followers.js";

/**
 * `GET /v1/functions/:fn/streams/:id/logs[?follow=1]`: a live or recently ended stream's kept
 * `ctx.log` lines, as JSON, or followed as NDJSON until the stream ends.
 * `GET /v1/functions/:fn/logs?follow=1`: every stream's lines of a function as they happen.
 */
export function registerLogRoutes(gateway: Gateway, table: StreamTable, registry: Registry, followers: LogFollowers): void {
  gateway.route("GET", "/v1/functions/:fn/streams/:id/logs", (_req, res, url, { fn, id }) => {
    const live = table.get(fn!, id!);
    const ended = live ? undefined : table.ended(fn!, id!);
    if (!live && !ended) {
      throw new StreamfnError("STREAM_NOT_FOUND", `no live or recently ended stream "${id}" of ${fn}`);
    }
    const snapshot: StreamLogSnapshot = live ? live.logSnapshot() : { lines: ended!.logs ?? [], dropped: ended!.logsDropped ?? 0 };
    if (!wantsFollow(url)) {
      sendJson(res, 200, snapshot, { "cache-control": "no-store" });
      return;
    }
    if (live) followers.checkRoom();
    const follower = new LogFollower(res);
    for (const line of snapshot.lines) follower.write({ type: "log", ...line } satisfies LogRecord);
    if (live) {
      // Synchronously after the snapshot: no line can fall in between.
      followers.followStream(live.functionName, live.streamId, follower);
      return;
    }
    const e = ended!;
    const end: LogEndRecord = { type: "end", status: e.status, reason: e.reason, events: e.events, outputs: e.outputs, dropped: snapshot.dropped };
    if (e.error) end.error = e.error;
    follower.end(end);
  });

  gateway.route("GET", "/v1/functions/:fn/logs", (_req, res, url, { fn }) => {
    if (!registry.functions().some((f) => f.name === fn)) {
      throw new StreamfnError("FUNCTION_NOT_FOUND", `no function named "${fn}"`);
    }
    if (!wantsFollow(url)) {
      throw new StreamfnError(
        "INVALID_REQUEST",
        `a function's logs are only followed: add ?follow=1, or read one stream's kept lines at /v1/functions/${fn}/streams/:id/logs`,
      );
    }
    followers.checkRoom();
    followers.followFunction(fn!, new LogFollower(res));
  });
}

function wantsFollow(url: URL): boolean {
  const v = url.searchParams.get("follow");
  if (v === null || v === "0" || v === "false") return false;
  if (v === "" || v === "1" || v === "true") return true;
  throw new StreamfnError("INVALID_REQUEST", `follow must be 1 or 0, got ${JSON.stringify(v.slice(0, 20))}`);
}
