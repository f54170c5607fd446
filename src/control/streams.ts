import type { ServerLogger } from "../server/logger.js";
import type { IncomingMessage, ServerResponse } from "node:http";
import { StreamfnError } from "../api/errors.js";
import type { ErrorRecord } from "../api/errors.js";
import { sendJson } from "../gateway/http-util.js";
import type { Registry } from "../registry/registry.js";
import type { StreamTable } from "../router/stream-table.js";
import type { ControlAccess } from "./access.js";

export type StreamListState = "waiting" | "running" | "completed" | "failed";

/** One stream in GET /v1/functions/:fn/streams. */
export interface StreamSummary {
  id: string;
  state: StreamListState;
  version: string | null;
  openedAt: string;
  endedAt: string | null;
  /** Since it opened. */
  ageMs: number;
  /** From open to end; null while live. */
  durationMs: number | null;
  events: number;
  outputs: number;
  /** The input's end reason while live (null until it ends); the stream's end reason once ended. */
  reason: string | null;
  error: ErrorRecord | null;
}

const kFilters = ["live", "ended", "waiting", "running", "completed", "failed"] as const;
type Filter = (typeof kFilters)[number];
const kDefaultLimit = 50;
const kMaxLimit = 1000;

export interface StreamsDeps {
  table: StreamTable;
  registry: Registry;
  access: ControlAccess;
  logger: ServerLogger;
}

/**
 * Live and remembered ended streams of one function, newest opened first, a page at a time.
 * Ordered by when each opened (then by id), which a stream keeps when it ends: the cursor
 * (the last item's place) stays valid while streams end between pages.
 */
export function listStreams(deps: StreamsDeps, res: ServerResponse, url: URL, fn: string): void {
  const filter = parseFilter(url.searchParams.get("state"));
  const limit = parseLimit(url.searchParams.get("limit"));
  const after = parseCursor(url.searchParams.get("cursor"));
  const now = Date.now();
  const all: StreamSummary[] = [];
  let live = 0;
  for (const s of deps.table.live()) {
    if (s.functionName !== fn) continue;
    live++;
    all.push({
      id: s.streamId,
      state: s.state === "waiting" ? "waiting" : "running",
      version: s.version,
      openedAt: new Date(s.openedAt).toISOString(),
      endedAt: null,
      ageMs: now - s.openedAt,
      durationMs: null,
      events: s.events,
      outputs: s.outputs,
      reason: s.inputEnd ?? null,
      error: null,
    });
  }
  const ended = deps.table.endedOf(fn);
  for (const { streamId, ended: e } of ended) {
    const openedAt = e.openedAt ?? e.endedAt;
    all.push({
      id: streamId,
      state: e.status,
      version: e.version ?? null,
      openedAt: new Date(openedAt).toISOString(),
      endedAt: new Date(e.endedAt).toISOString(),
      ageMs: now - openedAt,
      durationMs: e.endedAt - openedAt,
      events: e.events,
      outputs: e.outputs,
      reason: e.reason,
      error: e.error ?? null,
    });
  }
  if (all.length === 0 && !deps.registry.functions().some((f) => f.name === fn)) {
    throw new StreamfnError("FUNCTION_NOT_FOUND", `no function named "${fn}"`);
  }
  const openedMs = (s: StreamSummary): number => Date.parse(s.openedAt);
  const page = all
    .filter((s) => matches(s.state, filter))
    .filter((s) => !after || openedMs(s) < after.openedAt || (openedMs(s) === after.openedAt && s.id > after.id))
    .sort((a, b) => openedMs(b) - openedMs(a) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const streams = page.slice(0, limit);
  const last = streams[streams.length - 1];
  const next = page.length > limit && last ? cursorOf(openedMs(last), last.id) : null;
  sendJson(res, 200, { function: fn, live, ended: ended.length, streams, next });
}

/** DELETE /v1/functions/:fn/streams/:id: ends a live stream failed with STREAM_CANCELLED. */
export function cancelStream(deps: Pick<StreamsDeps, "table" | "access"> & { logger: { warn(obj: object, msg: string): void } }, req: IncomingMessage, res: ServerResponse, url: URL, fn: string, id: string): void {
  deps.access.assertMayChange(`cancelling stream "${id}" of ${fn}`, req);
  const stream = deps.table.get(fn, id);
  if (!stream) {
    const ended = deps.table.ended(fn, id);
    if (ended) {
      throw new StreamfnError("STREAM_ENDED", `stream "${id}" of ${fn} already ended (${ended.status}, reason ${ended.reason}); nothing to cancel`);
    }
    throw new StreamfnError("STREAM_NOT_FOUND", `no live stream "${id}" of ${fn}`);
  }
  const why = url.searchParams.get("reason")?.slice(0, 200);
  const error: ErrorRecord = { code: "STREAM_CANCELLED", message: `cancelled by an operator${why ? `: ${why}` : ""}` };
  deps.table.fail(stream, error);
  deps.logger.warn({ fn, version: stream.version, streamId: id, reason: why ?? null }, "stream cancelled by an operator");
  const end = stream.end!;
  sendJson(res, 200, {
    function: fn,
    streamId: id,
    version: stream.version,
    status: end.status,
    events: end.events,
    outputs: end.outputs,
    error: end.error ?? error,
  });
}

function matches(state: StreamListState, filter: Filter | undefined): boolean {
  if (filter === undefined || filter === state) return true;
  if (filter === "live") return state === "waiting" || state === "running";
  if (filter === "ended") return state === "completed" || state === "failed";
  return false;
}

function parseFilter(value: string | null): Filter | undefined {
  if (value === null || value === "") return undefined;
  if ((kFilters as readonly string[]).includes(value)) return value as Filter;
  throw new StreamfnError("INVALID_REQUEST", `?state= takes one of ${kFilters.join(", ")}; got ${JSON.stringify(value.slice(0, 40))}`);
}

function parseLimit(value: string | null): number {
  if (value === null || value === "") return kDefaultLimit;
  const n = /^\d{1,7}$/.test(value) ? Number(value) : NaN;
  if (!(n >= 1 && n <= kMaxLimit)) {
    throw new StreamfnError("INVALID_REQUEST", `?limit= takes 1-${kMaxLimit}; got ${JSON.stringify(value.slice(0, 40))}`);
  }
  return n;
}

function cursorOf(openedAt: number, id: string): string {
  return Buffer.from(JSON.stringify([openedAt, id])).toString("base64url");
}

function parseCursor(value: string | null): { openedAt: number; id: string } | undefined {
  if (value === null || value === "") return undefined;
  try {
    const [openedAt, id] = JSON.parse(Buffer.from(value, "base64url").toString()) as unknown[];
    if (typeof openedAt === "number" && typeof id === "string") return { openedAt, id };
  } catch {
    // refused below
  }
  throw new StreamfnError("INVALID_REQUEST", "?cursor= is not one this server gave out: pass the `next` of the page before");
}
