import { defineStreamFunction } from "streamfn";

// An async-function handler: consumes the whole stream, returns one output.
export default defineStreamFunction<number, { count: number; mean: number | null }>({
  async handler(values) {
    let count = 0;
    let sum = 0;
    for await (const v of values) {
      if (typeof v !== "number") throw new TypeError(`expected a number, got ${JSON.stringify(v)}`);
      count++;
      sum += v;
    }
    return { count, mean: count ? sum / count : null };
  },
});
