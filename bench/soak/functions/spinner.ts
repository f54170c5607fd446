import { defineStreamFunction } from "streamfn";
import { misbehave } from "./shared/misbehave.js";

// A CPU loop makes the instance unresponsive: it is recycled (INSTANCE_UNRESPONSIVE). One
// stream per instance, so the expected code is the spinning stream's own.
export default defineStreamFunction({
  concurrency: 1,
  maxInstances: 2,
  unresponsiveMs: 500,
  handler: misbehave,
});
