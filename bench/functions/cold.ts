import { defineStreamFunction } from "streamfn";
import { trivial } from "./shared/trivial.js";

// No keep-alive: an instance stops as soon as its stream ends, so every stream is a cold start.
export default defineStreamFunction({
  keepAliveMs: 0,
  maxInstances: 1,
  handler: trivial,
});
