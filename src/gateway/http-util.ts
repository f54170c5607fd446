import type { ServerResponse } from "node:http";
import { StreamfnError } from "../api/errors.js";

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Answers with the error's status, its stable code and message, and Retry-After when it has one. */
export function sendError(res: ServerResponse, err: unknown): void {
  const e =
    err instanceof StreamfnError
      ? err
      : new StreamfnError("INTERNAL", err instanceof Error ? err.message : String(err), { cause: err });
  if (res.headersSent) {
    res.destroy(e);
    return;
  }
  const headers: Record<string, string> = {};
  if (e.retryAfterMs !== undefined) headers["retry-after"] = String(Math.max(1, Math.ceil(e.retryAfterMs / 1000)));
  sendJson(res, e.status, { error: e.toRecord() }, headers);
}
