import { StreamfnError } from "./errors.js";

/**
 * A broker topic or subject bound to a function: every message on it is an event of the stream
 * its id names. The first message of an id opens the stream; the stream ends as any other
 * (idle gap, maxEvents, maxDurationMs) or by the end marker configured here.
 */
export interface StreamSource {
  /** An MQTT topic filter (`sensors/+/burst`). Give this or `nats`. */
  mqtt?: string;
  /** A NATS subject (`sensors.*.burst`). Give this or `mqtt`. */
  nats?: string;
  /**
   * Where the stream id comes from: a topic level / subject token (`{ level: 1 }`, counted from
   * 0), or a field of the JSON payload (`{ field: "device" }`). Default: the first wildcard
   * level (`+` or `*`) of the topic.
   */
  streamId?: { level: number } | { field: string };
  /** `json` (default): the payload is parsed; `binary`: the handler gets its bytes (`Uint8Array`). */
  payload?: "json" | "binary";
  /** MQTT subscription QoS: 1 (default, at-least-once from the broker) or 0 (at-most-once). */
  qos?: 0 | 1;
  /**
   * The JSON payload field carrying the event's sequence number (default `seq`). A message whose
   * seq is at or below the stream's last is a redelivery: acknowledged, not delivered again.
   * MQTT 5 user property `seq` and NATS header `seq` are read as well (binary payloads use them).
   */
  seqField?: string;
  /**
   * End markers. `topic`: a topic filter (MQTT) or subject (NATS) whose messages end the stream
   * their id names (the id is read the same way as on the source); `field`: a JSON payload field
   * that, when `true`, ends the stream (that message is the marker, not an event).
   */
  end?: { topic?: string; field?: string };
  /**
   * Where outputs go, on the same broker: a topic / subject template with `{streamId}` (the
   * stream's id) and `{key}` (the id read from the message). Each output carries its number
   * (MQTT 5 user property `n`, NATS header `n`) so consumers can drop a duplicate.
   */
  output?: { topic: string; qos?: 0 | 1; jetstream?: boolean };
}

const kSourceKeys = new Set(["mqtt", "nats", "streamId", "payload", "qos", "seqField", "end", "output"]);

function fail(where: string, message: string): never {
  throw new StreamfnError("INVALID_OPTIONS", `${where}: ${message}`);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function checkKeys(where: string, value: Record<string, unknown>, known: string[]): void {
  for (const k of Object.keys(value)) {
    if (!known.includes(k)) fail(where, `unknown key "${k}" (known: ${known.join(", ")})`);
  }
}

function nonEmptyString(v: unknown): v is string {
  return typeof v === "string" && v.length > 0 && v.length <= 1024;
}

/** Checks an MQTT topic filter: `+` and `#` only as whole levels, `#` only last. */
export function checkMqttFilter(filter: string, where: string, wildcards = true): void {
  const levels = filter.split("/");
  levels.forEach((level, i) => {
    if (level.includes("\u0000")) fail(where, `topic ${JSON.stringify(filter)} contains a NUL character`);
    if ((level.includes("+") && level !== "+") || (level.includes("#") && level !== "#")) {
      fail(where, `topic ${JSON.stringify(filter)}: "+" and "#" must fill a whole level`);
    }
    if (level === "#" && i !== levels.length - 1) fail(where, `topic ${JSON.stringify(filter)}: "#" must be the last level`);
    if (!wildcards && (level === "+" || level === "#")) fail(where, `topic ${JSON.stringify(filter)} may not contain wildcards`);
  });
}

/** Checks a NATS subject: non-empty dot-separated tokens, `*` and `>` only as whole tokens, `>` only last. */
export function checkNatsSubject(subject: string, where: string, wildcards = true): void {
  if (/\s/.test(subject)) fail(where, `subject ${JSON.stringify(subject)} contains whitespace`);
  const tokens = subject.split(".");
  tokens.forEach((t, i) => {
    if (t === "") fail(where, `subject ${JSON.stringify(subject)} has an empty token`);
    if ((t.includes("*") && t !== "*") || (t.includes(">") && t !== ">")) {
      fail(where, `subject ${JSON.stringify(subject)}: "*" and ">" must fill a whole token`);
    }
    if (t === ">" && i !== tokens.length - 1) fail(where, `subject ${JSON.stringify(subject)}: ">" must be the last token`);
    if (!wildcards && (t === "*" || t === ">")) fail(where, `subject ${JSON.stringify(subject)} may not contain wildcards`);
  });
}

/** The levels of a filter or subject that are single-level wildcards. */
export function wildcardLevels(topic: string, broker: "mqtt" | "nats"): number[] {
  const parts = topic.split(broker === "mqtt" ? "/" : ".");
  const one = broker === "mqtt" ? "+" : "*";
  return parts.flatMap((p, i) => (p === one ? [i] : []));
}

/**
 * Checks a list of sources (`sources` of defineStreamFunction, or the server configuration's),
 * naming the offending entry and key. The result is a normalised copy.
 */
export function validateSources(input: unknown, where: string): StreamSource[] {
  if (input === undefined) return [];
  if (!Array.isArray(input)) fail(where, `sources must be an array, got ${JSON.stringify(input)}`);
  if (input.length > 64) fail(where, `at most 64 sources per function, got ${input.length}`);
  return input.map((raw, i) => validateSource(raw, `${where}: sources[${i}]`));
}

function validateSource(raw: unknown, where: string): StreamSource {
  if (!isPlainObject(raw)) fail(where, `a source must be an object like {"mqtt": "sensors/+/burst"}, got ${JSON.stringify(raw)}`);
  for (const k of Object.keys(raw)) {
    if (!kSourceKeys.has(k)) fail(where, `unknown key "${k}" (known: ${[...kSourceKeys].join(", ")})`);
  }
  const hasMqtt = raw.mqtt !== undefined;
  const hasNats = raw.nats !== undefined;
  if (hasMqtt === hasNats) fail(where, `give exactly one of "mqtt" (a topic filter) or "nats" (a subject)`);
  const broker = hasMqtt ? "mqtt" : "nats";
  const topic = raw[broker];
  if (!nonEmptyString(topic)) fail(where, `"${broker}" must be a non-empty string, got ${JSON.stringify(topic)}`);
  const check = broker === "mqtt" ? checkMqttFilter : checkNatsSubject;
  check(topic, where);
  const out: StreamSource = { [broker]: topic };
  const levels = topic.split(broker === "mqtt" ? "/" : ".");

  if (raw.streamId !== undefined) {
    const s = raw.streamId;
    if (!isPlainObject(s)) fail(where, `streamId must be {"level": <n>} or {"field": "<name>"}, got ${JSON.stringify(s)}`);
    if ("level" in s) {
      checkKeys(`${where}.streamId`, s, ["level"]);
      const level = s.level;
      if (typeof level !== "number" || !Number.isInteger(level) || level < 0 || level >= levels.length) {
        fail(where, `streamId.level must be an index 0-${levels.length - 1} into the levels of ${JSON.stringify(topic)}, got ${JSON.stringify(level)}`);
      }
      const l = levels[level];
      if (l === "#" || l === ">") fail(where, `streamId.level ${level} is the multi-level wildcard of ${JSON.stringify(topic)}; name a single level`);
      out.streamId = { level };
    } else if ("field" in s) {
      checkKeys(`${where}.streamId`, s, ["field"]);
      if (!nonEmptyString(s.field)) fail(where, `streamId.field must be a non-empty string, got ${JSON.stringify(s.field)}`);
      out.streamId = { field: s.field };
    } else {
      fail(where, `streamId must be {"level": <n>} or {"field": "<name>"}, got ${JSON.stringify(s)}`);
    }
  } else {
    const first = wildcardLevels(topic, broker)[0];
    if (first === undefined) {
      fail(where, `${JSON.stringify(topic)} has no single-level wildcard to take the stream id from; set streamId {"level": <n>} or {"field": "<name>"}`);
    }
    out.streamId = { level: first };
  }

  if (raw.payload !== undefined) {
    if (raw.payload !== "json" && raw.payload !== "binary") fail(where, `payload must be "json" or "binary", got ${JSON.stringify(raw.payload)}`);
    out.payload = raw.payload;
  }
  if ("field" in out.streamId! && out.payload === "binary") fail(where, `streamId.field needs a JSON payload; a binary source takes its id from a topic level`);
  if (raw.qos !== undefined) {
    if (raw.qos !== 0 && raw.qos !== 1) fail(where, `qos must be 0 or 1, got ${JSON.stringify(raw.qos)}`);
    if (broker !== "mqtt") fail(where, `qos applies to MQTT sources only`);
    out.qos = raw.qos;
  }
  if (raw.seqField !== undefined) {
    if (!nonEmptyString(raw.seqField)) fail(where, `seqField must be a non-empty string, got ${JSON.stringify(raw.seqField)}`);
    out.seqField = raw.seqField;
  }
  if (raw.end !== undefined) {
    const e = raw.end;
    if (!isPlainObject(e)) fail(where, `end must be {"topic": "..."} and/or {"field": "..."}, got ${JSON.stringify(e)}`);
    checkKeys(`${where}.end`, e, ["topic", "field"]);
    const end: NonNullable<StreamSource["end"]> = {};
    if (e.topic !== undefined) {
      if (!nonEmptyString(e.topic)) fail(where, `end.topic must be a non-empty string, got ${JSON.stringify(e.topic)}`);
      check(e.topic, `${where}.end`);
      if ("level" in out.streamId! && e.topic.split(broker === "mqtt" ? "/" : ".").length <= out.streamId.level) {
        fail(where, `end.topic ${JSON.stringify(e.topic)} has no level ${out.streamId.level} to read the stream id from`);
      }
      end.topic = e.topic;
    }
    if (e.field !== undefined) {
      if (!nonEmptyString(e.field)) fail(where, `end.field must be a non-empty string, got ${JSON.stringify(e.field)}`);
      if (out.payload === "binary") fail(where, `end.field needs a JSON payload`);
      end.field = e.field;
    }
    if (end.topic === undefined && end.field === undefined) fail(where, `end needs "topic" or "field"`);
    out.end = end;
  }
  if (raw.output !== undefined) {
    const o = raw.output;
    if (!isPlainObject(o)) fail(where, `output must be {"topic": "alerts/{streamId}"}, got ${JSON.stringify(o)}`);
    checkKeys(`${where}.output`, o, ["topic", "qos", "jetstream"]);
    if (!nonEmptyString(o.topic)) fail(where, `output.topic must be a non-empty template string, got ${JSON.stringify(o.topic)}`);
    const unknown = [...o.topic.matchAll(/\{([^}]*)\}/g)].map((m) => m[1]).filter((p) => p !== "streamId" && p !== "key");
    if (unknown.length > 0) fail(where, `output.topic: unknown placeholder {${unknown[0]}} (known: {streamId}, {key})`);
    check(o.topic.replace(/\{(streamId|key)\}/g, "x"), `${where}.output`, false);
    const output: NonNullable<StreamSource["output"]> = { topic: o.topic };
    if (o.qos !== undefined) {
      if (o.qos !== 0 && o.qos !== 1) fail(where, `output.qos must be 0 or 1, got ${JSON.stringify(o.qos)}`);
      if (broker !== "mqtt") fail(where, `output.qos applies to MQTT only (NATS outputs use "jetstream")`);
      output.qos = o.qos;
    }
    if (o.jetstream !== undefined) {
      if (typeof o.jetstream !== "boolean") fail(where, `output.jetstream must be true or false`);
      if (broker !== "nats") fail(where, `output.jetstream applies to NATS only`);
      output.jetstream = o.jetstream;
    }
    out.output = output;
  }
  return out;
}

/** The broker a (validated) source uses. */
export function sourceBroker(source: StreamSource): "mqtt" | "nats" {
  return source.mqtt !== undefined ? "mqtt" : "nats";
}
