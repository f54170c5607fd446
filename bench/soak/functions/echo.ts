import { defineStreamFunction } from "streamfn";
import { misbehave } from "./shared/misbehave.js";

// Healthy streams, and streams that throw, disconnect, send malformed envelopes or read slowly:
// they share instances, so a fault here is next to healthy neighbours.
// idleTimeoutMs is the default's: a tighter one ends streams whose producer (this same
// loaded machine) was merely slow, and over HTTP a vanished producer is noticed only by it.
export default defineStreamFunction({
  idleTimeoutMs: 10_000,
  maxEventBytes: 16_384,
  handler: misbehave,
});
