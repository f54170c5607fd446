import { StreamfnError } from "../api/errors.js";
import type { ErrorCode } from "../api/errors.js";

/** JetStream's API error code for a failed expected-last-sequence check (ADR-1 err_code). */
const kWrongLastSequence = 10071;

/**
 * True when the server refused a publish because the subject's last sequence was not the one
 * expected. Servers before 2.10 answer publishes with only a description, so both are checked.
 */
export function isWrongLastSequence(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  return code === kWrongLastSequence || /wrong last sequence/i.test(err.message);
}

/**
 * A failed first connect to a NATS server as a typed error naming the server: refused
 * credentials (`auth`) or anything else (`unreachable`), each with the caller's code, since
 * the cluster and the connectors report their servers under codes of their own.
 */
export function natsConnectError(err: unknown, server: string, codes: { auth: ErrorCode; unreachable: ErrorCode }): StreamfnError {
  const message = err instanceof Error ? err.message : String(err);
  const name = err instanceof Error ? err.name : "";
  if (name === "AuthorizationError" || /authoriz|authentic/i.test(message)) {
    return new StreamfnError(codes.auth, `NATS server ${server} refused the credentials: ${message}`, { cause: err });
  }
  return new StreamfnError(codes.unreachable, `cannot connect to NATS server ${server}: ${message}`, { cause: err });
}

/** Wraps a NATS client failure into a typed, retryable error naming what was being done. */
export function clusterError(what: string, err: unknown): StreamfnError {
  if (err instanceof StreamfnError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new StreamfnError("CLUSTER_ERROR", `${what}: ${message}`, { cause: err });
}
