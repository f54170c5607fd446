import type { ErrorCode } from "../api/errors.js";
import type { PoolObserver } from "../instances/pool.js";
import type { RegistryChange } from "../registry/registry.js";
import type { RouterObserver } from "../router/router.js";
import type { ServerLogger } from "./logger.js";

/** Failures that are the function's or its instance's doing; the rest (shutdown, producer errors) are warnings. */
const kErrorCodes = new Set<ErrorCode>([
  "HANDLER_ERROR",
  "HANDLER_STALLED",
  "EPILOGUE_TIMEOUT",
  "INSTANCE_UNRESPONSIVE",
  "INSTANCE_CRASHED",
  "INSTANCE_OUT_OF_MEMORY",
  "OUTPUT_NOT_SERIALIZABLE",
  "INTERNAL",
]);

/** ctx.log lines written to the server log at once (over all streams)… */
const kLineBurst = 1_000;
/** …and per second after that; the rest are counted and the count is logged. */
const kLinesPerSecond = 200;
const kDroppedReportMs = 1_000;

/**
 * What the server logs about streams: every failed stream (with the handler's error name,
 * message and stack for HANDLER_ERROR) and the handlers' `ctx.log` lines, the latter through
 * a rate limit so that a handler logging in a loop cannot flood the log. `close()` stops the
 * pending report of dropped lines.
 */
export function streamLogObserver(logger: ServerLogger): RouterObserver & { close(): void } {
  let tokens = kLineBurst;
  let at = performance.now();
  let dropped = 0;
  let report: NodeJS.Timeout | undefined;
  const reportDropped = (): void => {
    report = undefined;
    if (dropped === 0) return;
    logger.warn({ dropped }, "ctx.log lines not written to the server log (rate limit; the streams' logs routes still have their last lines)");
    dropped = 0;
  };
  return {
    streamLog(stream, entry) {
      const now = performance.now();
      tokens = Math.min(kLineBurst, tokens + ((now - at) * kLinesPerSecond) / 1000);
      at = now;
      if (tokens < 1) {
        dropped++;
        if (!report) {
          report = setTimeout(reportDropped, kDroppedReportMs);
          report.unref();
        }
        return;
      }
      tokens--;
      logger[entry.level]({ fn: stream.functionName, version: stream.version, streamId: stream.streamId, source: "ctx.log" }, entry.msg);
    },
    streamClosed(stream, record) {
      if (record.status !== "failed" || !record.error) return;
      const e = record.error;
      const fields: Record<string, unknown> = {
        fn: stream.functionName,
        version: stream.version,
        streamId: stream.streamId,
        code: e.code,
        reason: record.reason,
        events: record.events,
        outputs: record.outputs,
      };
      if (e.code === "HANDLER_ERROR") fields.error = { name: e.name, message: e.message, stack: stream.errorStack };
      else fields.message = e.message;
      if (kErrorCodes.has(e.code)) logger.error(fields, "stream failed");
      else logger.warn(fields, "stream failed");
    },
    close() {
      if (report) clearTimeout(report);
      reportDropped();
    },
  };
}

/** Cold starts and instances that stop (scale to zero, replaced version) or exit on their own (crash, recycle). */
export function instanceLogObserver(logger: ServerLogger): PoolObserver {
  return {
    coldStart(pool, ms) {
      logger.info({ fn: pool.functionName, version: pool.version, ms: Math.round(ms * 10) / 10 }, "cold start");
    },
    instanceGone(pool, instance, exit) {
      const fields = { fn: pool.functionName, version: pool.version, instance: instance.id };
      if (exit) logger.warn({ ...fields, code: exit.code, message: exit.message }, "instance exited");
      else logger.info(fields, "instance stopped");
    },
  };
}

/** A deploy, removal or failed deploy, as one record. */
export function logRegistryChange(logger: ServerLogger, change: RegistryChange): void {
  switch (change.kind) {
    case "deployed":
      logger.info({ fn: change.name, version: change.version, previous: change.previous }, "deployed");
      return;
    case "removed":
      logger.info({ fn: change.name, version: change.version }, "removed (its file is gone; running streams finish on it)");
      return;
    case "failed":
      logger.error(
        { fn: change.name, file: change.file, code: change.error.code, message: change.error.message, serving: change.serving ?? null },
        "deploy failed",
      );
      return;
    case "skipped":
      logger.info({ fn: change.name, file: change.file }, change.message);
      return;
    case "watch-stopped":
      logger.error({ code: change.error.code, message: change.error.message }, "watching the functions directory stopped; functions keep serving");
      return;
  }
}

/**
 * One server record as a sentence for a person (`streamfn dev`, tests): deploys, removals and
 * failed deploys read as `streamfn: deployed echo@v2 (replaces v1)`,
 * `streamfn: CODE: message; still serving echo@v1`; any other record as `streamfn: <msg>`.
 */
export function describeServerRecord(r: Record<string, unknown>): string {
  const fn = typeof r.fn === "string" ? r.fn : undefined;
  switch (r.msg) {
    case "deployed": {
      const previous = typeof r.previous === "string" ? `replaces ${r.previous}` : "new function";
      return `streamfn: deployed ${fn}@${String(r.version)} (${r.source === "upload" ? `uploaded; ${previous}` : previous})`;
    }
    case "deploy failed":
      return (
        `streamfn: ${String(r.code)}: ${String(r.message)}` +
        (r.serving === undefined ? "" : typeof r.serving === "string" ? `; still serving ${fn}@${r.serving}` : "; not serving it")
      );
    case "removed (its file is gone; running streams finish on it)":
      return `streamfn: removed ${fn}@${String(r.version)} (its file is gone; running streams finish on it)`;
    default:
      return `streamfn: ${String(r.msg)}`;
  }
}
