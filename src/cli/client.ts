import { StreamfnError, isErrorCode } from "../api/errors.js";
import type { ErrorCode } from "../api/errors.js";

/** Where a CLI command finds a running server: flags first, then STREAMFN_URL / STREAMFN_TOKEN. */
export interface ServerTarget {
  url: string;
  token?: string | undefined;
}

export const kDefaultUrl = "http://127.0.0.1:8080";

/** Help text every command that talks to a server shares. */
export const kTargetHelp = "Reads STREAMFN_URL (default http://127.0.0.1:8080) and STREAMFN_TOKEN when --url / --token are not given.";

export function targetFrom(opts: { url?: string; token?: string }): ServerTarget {
  return {
    url: (opts.url ?? process.env.STREAMFN_URL ?? kDefaultUrl).replace(/\/+$/, ""),
    token: opts.token ?? (process.env.STREAMFN_TOKEN || undefined),
  };
}

export function authHeaders(target: ServerTarget): Record<string, string> {
  return target.token ? { authorization: `Bearer ${target.token}` } : {};
}

/**
 * Calls the server's HTTP API and returns the parsed JSON body. A refusal becomes a
 * StreamfnError with the server's own code and message; an unreachable server, one error
 * naming the URL.
 */
export async function callServer<T = unknown>(
  target: ServerTarget,
  method: string,
  path: string,
  body?: { contentType: string; data: string | Uint8Array },
): Promise<T> {
  const url = target.url + path;
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers: { ...authHeaders(target), ...(body ? { "content-type": body.contentType } : {}) },
      ...(body ? { body: body.data } : {}),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new StreamfnError("INTERNAL", `cannot reach the server at ${target.url}: ${cause?.code ?? cause?.message ?? (err as Error).message} (set --url or STREAMFN_URL)`);
  }
  const text = await res.text();
  if (!res.ok) throw errorFromBody(res.status, text);
  return (text === "" ? undefined : JSON.parse(text)) as T;
}

/** The server's `{"error":{code,message}}` body as an error; any other body is quoted. */
export function errorFromBody(status: number, text: string): StreamfnError {
  let code: ErrorCode = "INTERNAL";
  let message = `the server answered HTTP ${status}: ${text.slice(0, 200)}`;
  try {
    const e = (JSON.parse(text) as { error?: { code?: unknown; message?: unknown } }).error;
    if (e && isErrorCode(e.code)) {
      code = e.code;
      message = String(e.message);
    }
  } catch {
    // not JSON: keep the raw body in the message
  }
  return new StreamfnError(code, message);
}
