import { defineStreamFunction } from "streamfn";
import { misbehave } from "./shared/misbehave.js";

// A handler that stops pulling while events wait fails with HANDLER_STALLED.
export default defineStreamFunction({
  stallTimeoutMs: 500,
  handler: misbehave,
});
