import { defineStreamFunction } from "streamfn";
import { trivial } from "./shared/trivial.js";

// Many concurrently open, idle streams: wide instances, and a keep-alive short enough to
// watch the pool scale back to zero within the run.
export default defineStreamFunction({
  idleTimeoutMs: 300_000,
  concurrency: 2_500,
  maxInstances: 4,
  maxQueuedStreams: 10_000,
  keepAliveMs: 2_000,
  handler: trivial,
});
