import { defineStreamFunction } from "streamfn";
import { trivial } from "./shared/trivial.js";

// JSON and binary events, warm instances: the hot-path scenarios.
export default defineStreamFunction({
  idleTimeoutMs: 120_000,
  keepAliveMs: 2_000,
  handler: trivial,
});
