import type { ServerLogger } from "../server/logger.js";
import type { IncomingMessage, ServerResponse } from "node:http";
import { StreamfnError } from "../api/errors.js";
import { mediaType, readBody, sendJson } from "../gateway/http-util.js";
import { assertFunctionName } from "../registry/registry.js";
import type { Registry, UploadKind } from "../registry/registry.js";
import type { FunctionStatus, ServerStatus } from "../server/status.js";
import type { ControlAccess } from "./access.js";

/** An uploaded function is one bundle or one source file; anything bigger is not a function. */
export const kMaxUploadBytes = 16 * 1024 * 1024;

const kUploadTypes: Record<string, UploadKind> = {
  "application/javascript": "js",
  "text/javascript": "js",
  "application/x-javascript": "js",
  "application/typescript": "ts",
  "text/typescript": "ts",
  "application/x-typescript": "ts",
};

/** One function in the list of GET /v1/functions. */
export interface FunctionSummary {
  name: string;
  /** The version new streams get; null while a retired function's last streams finish. */
  version: string | null;
  /** Older versions still finishing their streams. */
  retiring: string[];
  source: FunctionStatus["source"];
  file: string;
  instances: number;
  liveStreams: number;
  queuedStreams: number;
  coldStarts: number;
}

export interface FunctionsDeps {
  registry: Registry;
  access: ControlAccess;
  status(): ServerStatus;
  logger: ServerLogger;
}

export function listFunctions(deps: FunctionsDeps, res: ServerResponse): void {
  const functions = deps.status().functions.map(
    (f): FunctionSummary => ({
      name: f.name,
      version: f.version,
      retiring: f.versions.filter((v) => v.role === "retiring").map((v) => v.version),
      source: f.source,
      file: f.file,
      instances: f.versions.reduce((n, v) => n + v.instances.length, 0),
      liveStreams: f.liveStreams,
      queuedStreams: f.queuedStreams,
      coldStarts: f.coldStarts,
    }),
  );
  sendJson(res, 200, { functions });
}

export function describeFunction(deps: FunctionsDeps, res: ServerResponse, name: string): void {
  const fn = deps.status().functions.find((f) => f.name === name);
  if (!fn) throw new StreamfnError("FUNCTION_NOT_FOUND", `no function named "${name}"`);
  sendJson(res, 200, fn);
}

/** PUT /v1/functions/:name: the body is a new version (or the first) of the function. */
export async function uploadFunction(
  deps: FunctionsDeps,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  name: string,
): Promise<void> {
  deps.access.assertMayChange(`uploading function ${name}`, req);
  assertFunctionName(name);
  const kind = uploadKind(req, url);
  const body = await readBody(req, res, kMaxUploadBytes, (bytes) =>
    new StreamfnError("FUNCTION_TOO_LARGE", `the upload of ${name} has ${bytes} bytes; at most ${kMaxUploadBytes} (16 MiB) are taken`),
  );
  let source: string;
  try {
    source = new TextDecoder("utf-8", { fatal: true }).decode(body);
  } catch {
    throw new StreamfnError("INVALID_REQUEST", `the upload of ${name} is not UTF-8 text`);
  }
  if (source.trim() === "") throw new StreamfnError("INVALID_REQUEST", `the upload of ${name} is empty`);
  let result: { version: string; previous: string | undefined };
  try {
    result = await deps.registry.upload(name, source, kind);
  } catch (err) {
    throw deployFailure(err, name, deps.registry.current(name)?.version);
  }
  const { version, previous } = result;
  if (version !== previous) {
    deps.logger.info({ fn: name, version, previous, source: "upload" }, "deployed");
  }
  sendJson(res, previous === undefined ? 201 : 200, { name, version, previous: previous ?? null, unchanged: version === previous });
}

/** DELETE /v1/functions/:name: no new streams; running ones finish; the uploaded copy goes. */
export async function retireFunction(deps: FunctionsDeps, req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
  deps.access.assertMayChange(`retiring function ${name}`, req);
  const { version, removedUpload, directoryFile } = await deps.registry.retire(name);
  deps.logger.info({ fn: name, version: version ?? null, source: "control" }, "retired (running streams finish on it)");
  sendJson(res, 200, {
    name,
    version: version ?? null,
    removedUpload,
    file: directoryFile ?? null,
    note: directoryFile
      ? `${directoryFile} is in the functions directory: it is served again at the next restart, or when it changes on a watching server; delete the file to retire ${name} for good`
      : null,
  });
}

function uploadKind(req: IncomingMessage, url: URL): UploadKind {
  const given = url.searchParams.get("source");
  if (given !== null) {
    if (given === "ts" || given === "js") return given;
    throw new StreamfnError("INVALID_REQUEST", `?source= takes ts or js, got ${JSON.stringify(given.slice(0, 40))}`);
  }
  const type = mediaType(req);
  const kind = kUploadTypes[type];
  if (!kind) {
    throw new StreamfnError(
      "UNSUPPORTED_MEDIA_TYPE",
      `a function is uploaded as application/javascript (an ES module bundle) or application/typescript (one source file), got ${type || "no content-type"}`,
    );
  }
  return kind;
}

/** Code that does not bundle or load is the uploader's to fix: 422, naming what still serves. */
function deployFailure(err: unknown, name: string, serving: string | undefined): unknown {
  if (!(err instanceof StreamfnError)) return err;
  if (err.code !== "FUNCTION_LOAD_FAILED" && err.code !== "INVALID_FUNCTION" && err.code !== "INVALID_OPTIONS") return err;
  return new StreamfnError(
    "DEPLOY_FAILED",
    `${err.code}: ${err.message}; ${serving ? `still serving ${name}@${serving}` : `${name} is not served`}`,
    { cause: err },
  );
}
