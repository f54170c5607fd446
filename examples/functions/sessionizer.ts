import { defineStreamFunction } from "streamfn";

// One user's clickstream is one stream; this splits it into sessions. A session closes when the
// user's event time jumps more than `gapMs` (30 min by default) past the latest click seen; it is
// yielded right then, while the stream goes on, and the session still open when the stream ends
// is flushed. The gap is measured in the clicks' own time (`t`), not in arrival time, so a
// replayed day of clicks splits exactly as the live one would.
//
// Events: an optional header first, `{"user":"u-42","gapMs":1800000}` (any event without a
// `page`), then clicks `{"page":"/cart","t":<ms>,"action":"view"|"add"|"checkout"}`.
//
// Timestamps that do not go forward:
// - A click without a usable `t` happened "now" as far as we know: it joins the open session and
//   moves neither its end nor its clock. It cannot open a session after a gap it cannot measure.
// - A late click (`t` before the latest seen) also joins the open session. Sessions already
//   yielded are final (outputs cannot be taken back), and gaps are measured from the latest time
//   seen — a watermark — rather than from the previous click, so one straggler cannot split a
//   session in two. A late click counts towards the session but changes neither its end nor its
//   exit page. Both kinds are counted (`late`, `untimed`) so a producer's clock trouble shows.

const kStages = ["view", "add", "checkout"] as const;
type Stage = (typeof kStages)[number];

const kDefaultGapMs = 30 * 60_000;

interface Session {
  n: number;
  /** Event time of the session's first timed click. */
  start: number | null;
  /** The latest event time in the session. */
  end: number | null;
  clicks: number;
  pages: Set<string>;
  entry: string;
  exit: string;
  stage: Stage;
  late: number;
  untimed: number;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export default defineStreamFunction<unknown, unknown>({
  idleTimeoutMs: 60_000, // wall-clock silence on the connection ends the stream; the gap is event time
  maxDurationMs: 30 * 60_000,
  maxEvents: 10_000,
  async *handler(events, ctx) {
    let user: string | null = null;
    let gapMs = kDefaultGapMs;
    let first = true;
    let clock: number | undefined; // the latest event time seen in the stream
    let current: Session | undefined;
    let sessions = 0;
    let converted = 0;
    let clicks = 0;
    let skipped = 0;

    const close = (s: Session, closedBy: string) => {
      if (s.stage === "checkout") converted++;
      return {
        type: "session",
        user,
        session: s.n,
        start: s.start,
        end: s.end,
        durationMs: s.start !== null && s.end !== null ? s.end - s.start : null,
        clicks: s.clicks,
        distinctPages: s.pages.size,
        entry: s.entry,
        exit: s.exit,
        bounce: s.clicks === 1,
        stage: s.stage,
        converted: s.stage === "checkout",
        late: s.late,
        untimed: s.untimed,
        closedBy,
      };
    };

    for await (const event of events) {
      if (first && isObject(event) && !("page" in event)) {
        first = false;
        if (typeof event.user === "string") user = event.user;
        if ("gapMs" in event) {
          if (typeof event.gapMs === "number" && Number.isInteger(event.gapMs) && event.gapMs > 0) gapMs = event.gapMs;
          else ctx.log.warn(`header: gapMs must be a positive integer, got ${JSON.stringify(event.gapMs)}; using ${gapMs}`);
        }
        continue;
      }
      first = false;
      if (!isObject(event) || typeof event.page !== "string" || event.page === "") {
        skipped++;
        ctx.log.warn(`event ${ctx.event.seq}: a click needs a non-empty "page" (${JSON.stringify(event)?.slice(0, 100)}); skipped`);
        continue;
      }
      const page = event.page;
      let stage: Stage = "view";
      if (event.action !== undefined) {
        if (kStages.includes(event.action as Stage)) stage = event.action as Stage;
        else ctx.log.warn(`event ${ctx.event.seq}: unknown action ${JSON.stringify(event.action)}; counted as a view`);
      }
      const t = typeof event.t === "number" && Number.isFinite(event.t) ? event.t : undefined;

      if (current && t !== undefined && clock !== undefined && t - clock > gapMs) {
        yield close(current, "gap");
        current = undefined;
      }
      const late = t !== undefined && clock !== undefined && t < clock;
      if (t !== undefined && !late) clock = t;
      if (!current) {
        current = { n: ++sessions, start: null, end: null, clicks: 0, pages: new Set(), entry: page, exit: page, stage, late: 0, untimed: 0 };
      }
      clicks++;
      current.clicks++;
      current.pages.add(page);
      if (kStages.indexOf(stage) > kStages.indexOf(current.stage)) current.stage = stage;
      if (t === undefined) current.untimed++;
      else if (late) current.late++;
      else {
        current.start ??= t;
        current.end = t;
      }
      if (!late) current.exit = page;
    }

    if (current) yield close(current, ctx.endReason ?? "end");
    yield { type: "summary", user, sessions, clicks, converted, skipped, endReason: ctx.endReason };
  },
});
