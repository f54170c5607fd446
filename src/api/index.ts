// The public entry of streamfn: everything a function author imports.
export { defineStreamFunction } from "./define.js";
export { runStream } from "./run-stream.js";
export type { RunStreamOptions } from "./run-stream.js";
export { StreamfnError, ErrorCodes } from "./errors.js";
export type { ErrorCode, ErrorRecord } from "./errors.js";
export type { StreamSource } from "./sources.js";
export type { StreamLogEntry } from "../router/stream-log.js";
export type {
  EndReason,
  EventMeta,
  StreamContext,
  StreamFunction,
  StreamFunctionDefinition,
  StreamFunctionOptions,
  StreamHandler,
  StreamLogger,
} from "./types.js";
