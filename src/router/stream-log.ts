/** One `ctx.log` line of a stream, as the router keeps it (bounded per stream) and reports it. */
export interface StreamLogEntry {
  /** Epoch milliseconds. */
  time: number;
  level: "info" | "warn" | "error";
  msg: string;
}
