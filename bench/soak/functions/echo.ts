import { defineStreamFunction } from "streamfn";
import { misbehave } from "./shared/misbehave.js";

// Healthy streams, and streams that throw, disconnect, send malformed envelopes or read slowly:
// they share instances, so a fault here is next to healthy neighbours.
export default defineStreamFunction({
  idleTimeoutMs: 3_000,
  maxEventBytes: 16_384,
  handler: misbehave,
});
