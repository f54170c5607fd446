import type { IncomingMessage, ServerResponse } from "node:http";
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

/**
 * Reads a whole request body of at most `limit` bytes. A bigger body is refused with the
 * error `tooLarge` makes, as soon as its size is known (Content-Length) or passed, without
 * buffering the rest; the connection then closes after the answer, since the rest is unread.
 */
export function readBody(
  req: IncomingMessage,
  res: ServerResponse,
  limit: number,
  tooLarge: (bytes: number) => StreamfnError,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const refuse = (bytes: number): void => {
      res.setHeader("connection", "close");
      reject(tooLarge(bytes));
    };
    const declared = Number(req.headers["content-length"]);
    if (declared > limit) {
      refuse(declared);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.pause();
        refuse(size);
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(new StreamfnError("INVALID_REQUEST", `the request body could not be read: ${err.message}`));
    };
    const cleanup = (): void => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
  });
}

/** The media type of a request, lower-cased and without parameters; "" when absent. */
export function mediaType(req: IncomingMessage): string {
  const ct = req.headers["content-type"];
  if (!ct) return "";
  const semi = ct.indexOf(";");
  return (semi === -1 ? ct : ct.slice(0, semi)).trim().toLowerCase();
}
