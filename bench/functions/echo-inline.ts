import { defineStreamFunction } from "streamfn";
import { trivial } from "./shared/trivial.js";

// The same handler as `echo`, on the inline tier: run on the server's own thread.
export default defineStreamFunction({
  idleTimeoutMs: 120_000,
  keepAliveMs: 2_000,
  sandbox: "inline",
  handler: trivial,
});
