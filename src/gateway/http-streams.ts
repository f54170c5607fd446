import type { IncomingMessage, ServerResponse } from "node:http";
import { StreamfnError } from "../api/errors.js";
import type { StreamTable } from "../router/stream-table.js";
import type { StreamHttpHandler } from "./gateway.js";
import { postEnd, postEvents, streamStatus } from "./http-events.js";
import { mediaType, sendJson } from "./http-util.js";
import { serveNdjsonStream } from "./ndjson-stream.js";
import type { StreamRoute } from "./routes.js";
import { serveOutputs } from "./sse.js";

/** Media types taken as an NDJSON body of a whole stream. No content-type at all is taken as NDJSON too. */
const kNdjsonTypes = ["application/x-ndjson", "application/jsonl", "application/ndjson", ""];

/**
 * Streams over plain HTTP (BLUEPRINT §5), answered under /v1/functions/:fn/streams:
 *
 * | request                              | what it does                                      |
 * |--------------------------------------|---------------------------------------------------|
 * | POST or PUT  /streams[/:id]          | whole stream: NDJSON body in, NDJSON records out  |
 * | POST         /streams/:id/events     | one event or a batch (202, or 429 when full)      |
 * | POST         /streams/:id/end        | ends the stream's input (202)                     |
 * | GET          /streams/:id/outputs    | outputs as server-sent events, resumable          |
 * | GET          /streams/:id            | the stream's status                               |
 *
 * PUT is taken like POST because `curl -T file` (upload a file as it is read) sends PUT.
 */
export function createHttpStreams(table: StreamTable): StreamHttpHandler {
  return async (req: IncomingMessage, res: ServerResponse, route: StreamRoute, url: URL): Promise<void> => {
    const method = req.method ?? "GET";
    switch (route.action) {
      case undefined:
        if (method === "POST" || method === "PUT") {
          const type = mediaType(req);
          if (!kNdjsonTypes.includes(type)) {
            throw new StreamfnError(
              "UNSUPPORTED_MEDIA_TYPE",
              `a stream's body is NDJSON (content-type: application/x-ndjson), got ${type}; ` +
                `single events go to .../streams/:streamId/events`,
            );
          }
          await serveNdjsonStream(table, req, res, route);
          return;
        }
        if (method === "GET" && route.streamId !== undefined) {
          sendJson(res, 200, streamStatus(table, route.functionName, route.streamId));
          return;
        }
        // GET .../streams (the list) and DELETE .../streams/:id (cancel) are control routes.
        throw notAllowed(
          res,
          route.streamId === undefined ? "GET, POST, PUT" : "GET, POST, PUT, DELETE",
          method,
          route.streamId === undefined
            ? "open a stream with POST (NDJSON body) or a WebSocket upgrade; GET lists the function's streams"
            : "GET reads the status, POST streams an NDJSON body, DELETE cancels the stream",
        );
      case "events":
        if (method !== "POST") throw notAllowed(res, "POST", method, "events are posted");
        await postEvents(table, req, res, route);
        return;
      case "end":
        if (method !== "POST") throw notAllowed(res, "POST", method, "the end is posted");
        postEnd(table, res, route);
        return;
      case "outputs":
        if (method !== "GET") throw notAllowed(res, "GET", method, "outputs are read with GET (server-sent events)");
        await serveOutputs(table, req, res, route, url);
        return;
      default:
        throw new StreamfnError(
          "NOT_FOUND",
          `nothing at .../streams/${route.streamId}/${route.action}: try events, end or outputs`,
        );
    }
  };
}

function notAllowed(res: ServerResponse, allow: string, method: string, hint: string): StreamfnError {
  res.setHeader("allow", allow);
  return new StreamfnError("METHOD_NOT_ALLOWED", `${method} is not allowed here: ${hint}`);
}
