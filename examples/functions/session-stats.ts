import { defineStreamFunction } from "streamfn";

interface Click {
  page: string;
  ms?: number;
}

// One user session: state lives in local variables across the stream's events. Every event
// gets a running count back; when the session ends (explicit end or 5 s idle) a summary follows.
export default defineStreamFunction<Click, unknown>({
  idleTimeoutMs: 5_000,
  async *handler(clicks, ctx) {
    const pages = new Map<string, number>();
    let total = 0;
    let dwellMs = 0;
    for await (const click of clicks) {
      total++;
      dwellMs += click.ms ?? 0;
      pages.set(click.page, (pages.get(click.page) ?? 0) + 1);
      yield { seq: ctx.event.seq, clicks: total };
    }
    const top = [...pages.entries()].sort((a, b) => b[1] - a[1])[0];
    yield { summary: { clicks: total, distinctPages: pages.size, topPage: top?.[0] ?? null, dwellMs, endReason: ctx.endReason } };
  },
});
