import { defineStreamFunction } from "streamfn";
import { misbehave } from "./shared/misbehave.js";

// Allocating past the heap limit ends the instance: INSTANCE_OUT_OF_MEMORY.
export default defineStreamFunction({
  concurrency: 1,
  maxInstances: 2,
  memoryMb: 32,
  unresponsiveMs: 30_000,
  handler: misbehave,
});
