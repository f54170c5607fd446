import type { StreamContext } from "streamfn";

/**
 * The soak's handler: echoes every event, except that an event `{"cmd": …}` makes it fail
 * the way a real function can: throw, stop pulling, spin the CPU, or eat memory.
 */
export async function* misbehave(events: AsyncIterable<unknown>, _ctx: StreamContext): AsyncGenerator<unknown> {
  const keep: unknown[] = [];
  for await (const e of events) {
    const cmd = typeof e === "object" && e !== null ? (e as { cmd?: string }).cmd : undefined;
    if (cmd === "throw") throw new Error("thrown on purpose mid-stream");
    if (cmd === "stall") await new Promise(() => {});
    if (cmd === "spin") for (;;) {}
    if (cmd === "hog") for (;;) keep.push(Array.from({ length: 10_000 }, (_, i) => ({ i, s: `x${i}` })));
    yield e;
  }
}
