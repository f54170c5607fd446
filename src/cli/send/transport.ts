import { StreamfnError } from "../../api/errors.js";
import type { ServerTarget } from "../client.js";
import type { Item } from "./sources.js";

/** One stream's connection to the server, over WebSocket or the HTTP NDJSON route. */
export interface Transport {
  /** Resolves once the server took the stream; rejects with its refusal (code and message). */
  open(): Promise<void>;
  /** Whether the server still takes events (false once the stream or the connection ended). */
  readonly live: boolean;
  /** Sends one event; resolves when there is room for the next (the connection's backpressure). */
  send(item: Item): Promise<void>;
  /** No more events. */
  end(): void;
  /** Resolves when the server has closed the stream and the connection is done. */
  readonly closed: Promise<void>;
}

/** Every record the server sends, as one line of JSON text (binary outputs carry base64). */
export type RecordHandler = (line: string) => void;

export function streamPath(functionName: string, streamId: string | undefined): string {
  return `/v1/functions/${encodeURIComponent(functionName)}/streams${streamId ? `/${encodeURIComponent(streamId)}` : ""}`;
}

export function unreachable(target: ServerTarget, err: unknown): StreamfnError {
  const e = err as { code?: string; message?: string };
  return new StreamfnError("INTERNAL", `cannot reach the server at ${target.url}: ${e.code ?? e.message ?? String(err)} (set --url or STREAMFN_URL)`);
}
