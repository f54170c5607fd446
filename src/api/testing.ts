// `streamfn/testing`: what a function's tests import to run it without a server.
export { runStream } from "./run-stream.js";
export type { RunStreamOptions } from "./run-stream.js";
export type { EndReason, StreamFunction } from "./types.js";
