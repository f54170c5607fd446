import type { StreamContext } from "streamfn";

/**
 * The benchmark's handler: about the least a real stream function does. It keeps a running
 * count and sum in local variables and yields one small output per event, so every event
 * costs the platform one delivery and one output.
 */
export async function* trivial(events: AsyncIterable<unknown>, ctx: StreamContext): AsyncGenerator<unknown> {
  let count = 0;
  let sum = 0;
  for await (const event of events) {
    count++;
    if (event instanceof Uint8Array) sum += event.byteLength;
    else sum += (event as { v?: number }).v ?? 0;
    yield { n: count, seq: ctx.event.seq, sum };
  }
}
