import { StreamfnError } from "../api/errors.js";

/**
 * Every JetStream name cluster mode uses, in one place: the streams, their subjects, the work
 * consumers and the ownership bucket. A prefix lets several deployments (or tests) share one
 * NATS account without seeing each other.
 */
export interface ClusterNames {
  events: string;
  outputs: string;
  work: string;
  owners: string;
  /** Subject roots, e.g. `sfn.ev`; a stream's subject is `<root>.<fn>.<sid>`. */
  eventRoot: string;
  outputRoot: string;
  workRoot: string;
}

export function clusterNames(prefix = ""): ClusterNames {
  if (prefix !== "" && !/^[A-Za-z0-9_-]{1,32}$/.test(prefix)) {
    throw new StreamfnError("INVALID_OPTIONS", `cluster prefix "${prefix}" must be 1-32 letters, digits, '_' or '-'`);
  }
  const up = prefix === "" ? "" : `${prefix.toUpperCase()}_`;
  const low = prefix === "" ? "" : `${prefix.toLowerCase()}.`;
  const kv = prefix === "" ? "" : `${prefix.toLowerCase()}-`;
  return {
    events: `${up}SFN_EVENTS`,
    outputs: `${up}SFN_OUTPUTS`,
    work: `${up}SFN_WORK`,
    owners: `${kv}sfn-owners`,
    eventRoot: `${low}sfn.ev`,
    outputRoot: `${low}sfn.out`,
    workRoot: `${low}sfn.work`,
  };
}

// Function names become one subject token and part of a durable consumer name.
const kFunctionName = /^[A-Za-z0-9_-]{1,64}$/;

export function checkFunctionName(fn: string): string {
  if (!kFunctionName.test(fn)) {
    throw new StreamfnError("INVALID_REQUEST", `function name "${fn}" cannot be used in cluster mode: letters, digits, '_' and '-' only (1-64)`);
  }
  return fn;
}

/**
 * A stream id as one subject token: ids may hold `.` (a token separator), so they are
 * base64url-encoded (A-Z a-z 0-9 - _, all subject-safe and KV-key-safe).
 */
export function streamToken(streamId: string): string {
  if (streamId.length === 0) throw new StreamfnError("INVALID_STREAM_ID", "stream id is empty");
  return Buffer.from(streamId, "utf8").toString("base64url");
}

export function streamIdFromToken(token: string): string {
  return Buffer.from(token, "base64url").toString("utf8");
}

export function eventSubject(names: ClusterNames, fn: string, streamId: string): string {
  return `${names.eventRoot}.${checkFunctionName(fn)}.${streamToken(streamId)}`;
}

export function outputSubject(names: ClusterNames, fn: string, streamId: string): string {
  return `${names.outputRoot}.${checkFunctionName(fn)}.${streamToken(streamId)}`;
}

export function workSubject(names: ClusterNames, fn: string): string {
  return `${names.workRoot}.${checkFunctionName(fn)}`;
}

export function workConsumerName(fn: string): string {
  return `work-${checkFunctionName(fn)}`;
}

/** The KV key of a stream's owner record: `<fn>.<sid>` (KV keys allow `.`, `-`, `_`). */
export function ownerKey(fn: string, streamId: string): string {
  return `${checkFunctionName(fn)}.${streamToken(streamId)}`;
}
