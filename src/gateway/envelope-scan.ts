import type { StreamHandle, StreamTable } from "../router/stream-table.js";

/**
 * Judges an event envelope's bytes without building anything: for a table that forwards the
 * envelope's text to be parsed where the handler runs (a thread-tier instance, a cluster
 * worker), so that the event is parsed once, not once to judge it and again to use it.
 *
 * Returns the envelope's `seq` (> 0), 0 when it is certainly a valid `{"data": <JSON>}`
 * without one, or kParseIt when the bytes are anything else: invalid, an end message, an
 * unusual but valid shape (a key spelled with escapes, a seq written as `1e3`, nesting past
 * kMaxDepth). The caller then parses the text as before, which gives the precise error.
 * The one rule that matters: a verdict other than kParseIt is given only for text that
 * JSON.parse accepts and checkEnvelope would pass with the same seq.
 *
 * Bytes, not the decoded string: reading a Buffer's bytes is ~2× cheaper in V8 than
 * charCodeAt, and a text frame is valid UTF-8 (ws checks it), so every byte ≥ 0x80 is part of
 * a character that is legal inside a JSON string and illegal outside one, as it is here.
 */
export const kParseIt = -1;

/** Deeper values are left to JSON.parse (no recursion without bound). */
const kMaxDepth = 64;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;

export function scanEventEnvelope(b: Uint8Array): number {
  let i = skipSpace(b, 0);
  if (b[i] !== OPEN_OBJECT) return kParseIt;
  let sawData = false;
  let seq = 0;
  i = skipSpace(b, i + 1);
  for (;;) {
    // Keys are matched as their exact bytes; any other spelling goes to the full parse.
    let end: number;
    if ((end = afterKey(b, i, "data")) > 0) {
      if (sawData) return kParseIt;
      sawData = true;
      i = skipSpace(b, end);
      if (b[i] !== COLON) return kParseIt;
      i = scanValue(b, i + 1, 0);
      if (i < 0) return kParseIt;
    } else if ((end = afterKey(b, i, "seq")) > 0) {
      if (seq !== 0) return kParseIt;
      i = skipSpace(b, end);
      if (b[i] !== COLON) return kParseIt;
      i = skipSpace(b, i + 1);
      // Only plain digits, at most 15 of them: always a safe integer, read exactly.
      const start = i;
      if (!(b[i]! > ZERO && b[i]! <= NINE)) return kParseIt;
      let n = 0;
      while (b[i]! >= ZERO && b[i]! <= NINE) n = n * 10 + (b[i++]! - ZERO);
      if (i - start > 15) return kParseIt;
      seq = n;
    } else {
      return kParseIt;
    }
    i = skipSpace(b, i);
    const c = b[i];
    if (c === COMMA) {
      i = skipSpace(b, i + 1);
      continue;
    }
    if (c !== CLOSE_OBJECT) return kParseIt;
    if (!sawData) return kParseIt;
    return skipSpace(b, i + 1) === b.length ? seq : kParseIt;
  }
}

/** Index just past `"key"` written exactly so at `i`, or -1. */
function afterKey(b: Uint8Array, i: number, key: string): number {
  if (b[i] !== QUOTE) return -1;
  for (let k = 0; k < key.length; k++) if (b[i + 1 + k] !== key.charCodeAt(k)) return -1;
  return b[i + 1 + key.length] === QUOTE ? i + key.length + 2 : -1;
}

function skipSpace(b: Uint8Array, i: number): number {
  for (;;) {
    const c = b[i];
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
    else return i;
  }
}

/** Index just past the JSON value starting at `i` (after space), or -1. */
function scanValue(b: Uint8Array, i: number, depth: number): number {
  i = skipSpace(b, i);
  const c = b[i];
  if (c === QUOTE) return scanString(b, i + 1);
  if (c === OPEN_OBJECT) {
    if (depth >= kMaxDepth) return -1;
    i = skipSpace(b, i + 1);
    if (b[i] === CLOSE_OBJECT) return i + 1;
    for (;;) {
      if (b[i] !== QUOTE) return -1;
      i = scanString(b, i + 1);
      if (i < 0) return -1;
      i = skipSpace(b, i);
      if (b[i] !== COLON) return -1;
      i = scanValue(b, i + 1, depth + 1);
      if (i < 0) return -1;
      i = skipSpace(b, i);
      const d = b[i];
      if (d === COMMA) i = skipSpace(b, i + 1);
      else if (d === CLOSE_OBJECT) return i + 1;
      else return -1;
    }
  }
  if (c === OPEN_ARRAY) {
    if (depth >= kMaxDepth) return -1;
    i = skipSpace(b, i + 1);
    if (b[i] === CLOSE_ARRAY) return i + 1;
    for (;;) {
      i = scanValue(b, i, depth + 1);
      if (i < 0) return -1;
      i = skipSpace(b, i);
      const d = b[i];
      if (d === COMMA) i++;
      else if (d === CLOSE_ARRAY) return i + 1;
      else return -1;
    }
  }
  if (c === MINUS || (c !== undefined && c >= ZERO && c <= NINE)) return scanNumber(b, i);
  if (c === 0x74) return b[i + 1] === 0x72 && b[i + 2] === 0x75 && b[i + 3] === 0x65 ? i + 4 : -1; // true
  if (c === 0x66) return b[i + 1] === 0x61 && b[i + 2] === 0x6c && b[i + 3] === 0x73 && b[i + 4] === 0x65 ? i + 5 : -1; // false
  if (c === 0x6e) return b[i + 1] === 0x75 && b[i + 2] === 0x6c && b[i + 3] === 0x6c ? i + 4 : -1; // null
  return -1;
}

/** `i` is just past the opening quote. */
function scanString(b: Uint8Array, i: number): number {
  for (;;) {
    let c = b[i];
    // The common case, one comparison pair per byte: neither quote, backslash nor control.
    while (c !== undefined && c > QUOTE && c !== BACKSLASH) c = b[++i];
    if (c === QUOTE) return i + 1;
    if (c === BACKSLASH) {
      const e = b[i + 1];
      if (e === 0x75) {
        if (!isHex(b[i + 2]) || !isHex(b[i + 3]) || !isHex(b[i + 4]) || !isHex(b[i + 5])) return -1;
        i += 6;
      } else if (e === QUOTE || e === BACKSLASH || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) {
        i += 2;
      } else {
        return -1;
      }
      continue;
    }
    // The end of the bytes, or a control character (raw ones are not allowed in JSON strings).
    if (c === undefined || c < 0x20) return -1;
    i++; // space or `!`
  }
}

function isHex(c: number | undefined): boolean {
  return c !== undefined && ((c >= ZERO && c <= NINE) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66));
}

function scanNumber(b: Uint8Array, i: number): number {
  if (b[i] === MINUS) i++;
  let c = b[i];
  if (c === ZERO) {
    c = b[++i];
  } else if (c !== undefined && c > ZERO && c <= NINE) {
    do c = b[++i];
    while (c !== undefined && c >= ZERO && c <= NINE);
  } else {
    return -1;
  }
  if (c === DOT) {
    c = b[++i];
    if (c === undefined || c < ZERO || c > NINE) return -1;
    do c = b[++i];
    while (c !== undefined && c >= ZERO && c <= NINE);
  }
  if (c === 0x65 || c === 0x45) {
    c = b[++i];
    if (c === PLUS || c === MINUS) c = b[++i];
    if (c === undefined || c < ZERO || c > NINE) return -1;
    do c = b[++i];
    while (c !== undefined && c >= ZERO && c <= NINE);
  }
  return i;
}

/**
 * Pushes a JSON event judged by the scan alone (its text goes on; `data` stays undefined), for
 * a stream that forwards the envelope's text. Returns false when the caller must parse the
 * text itself: the stream needs the value (the inline tier), or the scan was unsure.
 */
export function pushScanned(table: StreamTable, stream: StreamHandle, raw: Uint8Array, bytes: number, text: string): boolean {
  if (!stream.forwardsEnvelopeText) return false;
  const seq = scanEventEnvelope(raw);
  if (seq === kParseIt) return false;
  table.push(stream, undefined, seq === 0 ? undefined : seq, false, bytes, text);
  return true;
}
