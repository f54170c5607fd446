import { defineStreamFunction } from "streamfn";

// Yields every event back as it arrives: the smallest stream function.
export default defineStreamFunction({
  idleTimeoutMs: 30_000,
  async *handler(events) {
    for await (const event of events) yield event;
  },
});
