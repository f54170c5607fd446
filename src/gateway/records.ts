import type { ErrorRecord } from "../api/errors.js";

/**
 * The text records the HTTP protocols send: the same `open`, `output`, `error` and `end`
 * records as WebSocket. Outputs arrive already serialized once by the router; a binary
 * output, which has no frame of its own here, travels inline as base64.
 */
export function outputRecord(n: number, json: string | undefined, bytes: Uint8Array | undefined): string {
  if (json !== undefined) return `{"type":"output","n":${n},"data":${json}}`;
  return `{"type":"output","n":${n},"binary":true,"base64":"${toBase64(bytes!)}"}`;
}

export function openRecord(functionName: string, streamId: string, version: string): string {
  return `{"type":"open","function":${JSON.stringify(functionName)},"streamId":${JSON.stringify(streamId)},"version":${JSON.stringify(version)}}`;
}

/** `line` is set for records about one line of an NDJSON body. */
export function errorRecord(record: ErrorRecord, seq?: number, line?: number): string {
  const body: Record<string, unknown> = { type: "error", code: record.code, message: record.message };
  if (seq !== undefined) body.seq = seq;
  if (line !== undefined) body.line = line;
  return JSON.stringify(body);
}

export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}
