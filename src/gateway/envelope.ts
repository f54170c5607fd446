import { StreamfnError } from "../api/errors.js";

export type Envelope = { end: true } | { end?: undefined; data: unknown; seq: number | undefined };

/**
 * Parses one text message: `{"data": <any JSON>, "seq"?: <positive integer>}` or `{"end": true}`.
 * The JSON is parsed exactly once; the parsed `data` is what the handler receives.
 */
export function parseEnvelope(text: string): Envelope {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new StreamfnError("INVALID_JSON", `message is not valid JSON: ${(err as Error).message}`);
  }
  return checkEnvelope(value);
}

export function checkEnvelope(value: unknown): Envelope {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new StreamfnError(
      "INVALID_ENVELOPE",
      `expected an object like {"data": ...} or {"end": true}, got ${describe(value)}`,
    );
  }
  const obj = value as Record<string, unknown>;
  if ("end" in obj) {
    if (obj.end !== true || Object.keys(obj).length !== 1) {
      throw new StreamfnError("INVALID_ENVELOPE", `an end message is exactly {"end": true}, got ${preview(obj)}`);
    }
    return { end: true };
  }
  if (!("data" in obj)) {
    throw new StreamfnError("INVALID_ENVELOPE", `an event needs a "data" field: {"data": ...}, got ${preview(obj)}`);
  }
  let seq: number | undefined;
  for (const key in obj) {
    if (key === "data") continue;
    if (key === "seq") {
      const s = obj.seq;
      if (typeof s !== "number" || !Number.isSafeInteger(s) || s < 1) {
        throw new StreamfnError("INVALID_SEQ", `"seq" must be a positive integer, got ${JSON.stringify(s)}`);
      }
      seq = s;
      continue;
    }
    throw new StreamfnError("INVALID_ENVELOPE", `unknown field "${key}" in event (allowed: data, seq)`);
  }
  return { data: obj.data, seq };
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return `a ${typeof value}`;
}

function preview(obj: Record<string, unknown>): string {
  const s = JSON.stringify(obj);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/**
 * For an event that was refused: its `seq` as the producer sent it, so the error record names
 * the right event. Any JSON number counts, also one that is not a valid seq (`1.5` comes back
 * as 1.5, not as the 1 in front of it); a value of another type, or none, gives undefined.
 * Read from the parsed envelope when the text is JSON, else picked out of the text.
 */
export function seqAsSent(text: string): number | undefined {
  if (text.length > 1_000_000) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
    const seq = (value as Record<string, unknown>).seq;
    return typeof seq === "number" && Number.isFinite(seq) ? seq : undefined;
  } catch {
    const m = /"seq"\s*:\s*(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(?=\s*[,}])/.exec(text);
    if (!m) return undefined;
    const n = Number(m[1]);
    return Number.isFinite(n) ? n : undefined;
  }
}
