/**
 * Every error the platform reports carries a stable `code`. Producers see the same codes in
 * `error` and `end` records; HTTP callers see them in the JSON body next to the status code.
 * `retryable` tells a client whether sending the same thing again later can succeed.
 */
export const ErrorCodes = {
  // bad input: fix the request, retrying it unchanged fails again
  INVALID_JSON: { status: 400, retryable: false },
  INVALID_ENVELOPE: { status: 400, retryable: false },
  INVALID_SEQ: { status: 400, retryable: false },
  INVALID_STREAM_ID: { status: 400, retryable: false },
  INVALID_REQUEST: { status: 400, retryable: false },
  EVENT_TOO_LARGE: { status: 413, retryable: false },
  BATCH_TOO_LARGE: { status: 413, retryable: false },
  FUNCTION_NOT_FOUND: { status: 404, retryable: false },
  STREAM_NOT_FOUND: { status: 404, retryable: false },
  NOT_FOUND: { status: 404, retryable: false },
  METHOD_NOT_ALLOWED: { status: 405, retryable: false },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, retryable: false },
  UNAUTHORIZED: { status: 401, retryable: false },
  FORBIDDEN: { status: 403, retryable: false },
  FUNCTION_TOO_LARGE: { status: 413, retryable: false },
  // the stream's state forbids it
  STREAM_ENDED: { status: 409, retryable: false },
  STREAM_INPUT_ENDED: { status: 409, retryable: false },
  STREAM_BUSY: { status: 409, retryable: false },
  STREAM_TAKEN_OVER: { status: 409, retryable: false },
  // an operator cancelled the stream (control API); in end records
  STREAM_CANCELLED: { status: 409, retryable: false },
  // a subscriber asked for outputs that are no longer kept (see outputRetention)
  OUTPUTS_EXPIRED: { status: 410, retryable: false },
  // limits and capacity: retry later
  INBOX_FULL: { status: 429, retryable: true },
  // a client (token or address) went over one of its rate limits (see SECURITY.md, "Limits")
  RATE_LIMITED: { status: 429, retryable: true },
  CAPACITY_EXCEEDED: { status: 503, retryable: true },
  SHUTTING_DOWN: { status: 503, retryable: true },
  // the server shut down and the handler did not finish within the grace period (--grace-ms)
  SHUTDOWN_TIMEOUT: { status: 503, retryable: true },
  // a stream failed
  HANDLER_ERROR: { status: 500, retryable: false },
  HANDLER_STALLED: { status: 500, retryable: false },
  EPILOGUE_TIMEOUT: { status: 500, retryable: false },
  INSTANCE_UNRESPONSIVE: { status: 500, retryable: false },
  INSTANCE_CRASHED: { status: 500, retryable: false },
  INSTANCE_OUT_OF_MEMORY: { status: 500, retryable: false },
  OUTPUT_NOT_SERIALIZABLE: { status: 500, retryable: false },
  // the process sandbox refused the handler a file (or another permission); the message names it
  SANDBOX_ACCESS_DENIED: { status: 500, retryable: false },
  // the handler went over its output limits (maxOutputBytes, maxOutputs): its stream fails
  OUTPUT_TOO_LARGE: { status: 500, retryable: false },
  TOO_MANY_OUTPUTS: { status: 500, retryable: false },
  // deploying a function
  FUNCTION_LOAD_FAILED: { status: 500, retryable: false },
  INVALID_FUNCTION: { status: 500, retryable: false },
  INVALID_OPTIONS: { status: 400, retryable: false },
  // the function asks for the inline tier on a server started with --no-inline
  SANDBOX_NOT_ALLOWED: { status: 403, retryable: false },
  // an uploaded function did not bundle or did not pass its check; the version before keeps serving
  DEPLOY_FAILED: { status: 422, retryable: false },
  // the CLI's own work (streamfn init)
  DIRECTORY_NOT_EMPTY: { status: 409, retryable: false },
  INSTALL_FAILED: { status: 500, retryable: false },
  // cluster mode (NATS JetStream): the cluster cannot be reached, refused our credentials, or
  // failed a request; a stream's ownership passed to another worker (its writes are refused)
  CLUSTER_UNREACHABLE: { status: 503, retryable: true },
  CLUSTER_AUTH_FAILED: { status: 503, retryable: false },
  CLUSTER_ERROR: { status: 503, retryable: true },
  STREAM_FENCED: { status: 409, retryable: false },
  STREAM_NOT_REPLAYABLE: { status: 409, retryable: false },
  // connectors (MQTT / NATS sources, see docs/connectors.md): a broker that cannot be reached
  // at start, or that refused the credentials
  BROKER_UNREACHABLE: { status: 503, retryable: true },
  BROKER_AUTH_FAILED: { status: 503, retryable: false },
  INTERNAL: { status: 500, retryable: false },
} as const satisfies Record<string, { status: number; retryable: boolean }>;

export type ErrorCode = keyof typeof ErrorCodes;

export interface ErrorRecord {
  code: ErrorCode;
  message: string;
  /** For HANDLER_ERROR: the name of what the handler threw (`RangeError`, `TypeError`…). */
  name?: string;
  /**
   * For HANDLER_ERROR: the stack as the sandbox saw it. It crosses to the router for the
   * server's log only; records sent to producers and subscribers never carry it.
   */
  stack?: string;
}

export class StreamfnError extends Error {
  override readonly name = "StreamfnError";
  readonly code: ErrorCode;
  /** Suggested wait before a retry, for CAPACITY_EXCEEDED, INBOX_FULL and RATE_LIMITED. */
  readonly retryAfterMs: number | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; retryAfterMs?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryAfterMs = options?.retryAfterMs;
  }

  get status(): number {
    return ErrorCodes[this.code].status;
  }

  get retryable(): boolean {
    return ErrorCodes[this.code].retryable;
  }

  toRecord(): ErrorRecord {
    return { code: this.code, message: this.message };
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && Object.hasOwn(ErrorCodes, value);
}
