import { StreamfnError } from "../../api/errors.js";
import { checkEnvelope } from "../../gateway/envelope.js";

/** What one input line becomes on the wire: an event envelope, or the end of input. */
export type WireLine = { kind: "event"; text: string } | { kind: "end" };

/** Longest stretch of a bad line quoted back in an error; the rest is elided. */
const kQuoteMax = 80;

/**
 * Checks one NDJSON input line and returns its envelope text. Errors quote the line as the
 * user wrote it (not the envelope it would have been wrapped in) and carry its line number.
 * Blank lines are skipped (null), as the server skips them.
 */
export function checkLine(text: string, lineNo: number, envelopes: boolean): WireLine | null {
  // Editors on some systems start a UTF-8 file with a byte-order mark; it is not part of the JSON.
  if (lineNo === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.trim() === "") return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new StreamfnError("INVALID_JSON", `line ${lineNo}: ${quote(text)} is not valid JSON (${jsonReason(err)})`);
  }
  if (!envelopes) return { kind: "event", text: `{"data":${text}}` };
  try {
    const env = checkEnvelope(value);
    return env.end ? { kind: "end" } : { kind: "event", text };
  } catch (err) {
    const e = err as StreamfnError;
    throw new StreamfnError(e.code, `line ${lineNo}: ${quote(text)} is not an envelope: ${e.message}`);
  }
}

function quote(text: string): string {
  const t = text.trim();
  return t.length > kQuoteMax ? `${t.slice(0, kQuoteMax - 1)}…` : t;
}

/** V8's reason without its echo of the whole input (`Unexpected token 'g', "garbage" is not valid JSON`). */
function jsonReason(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.replace(/, ".*" is not valid JSON$/s, "");
}
