import type { Command } from "commander";
import { Option } from "commander";
import { StreamfnError } from "../../api/errors.js";
import type { StreamSummary } from "../../control/streams.js";
import { callServer } from "../client.js";
import { formatAgo, formatDuration, renderTable } from "../format.js";
import { printJson, serverOf, withTarget } from "../target.js";
import type { TargetFlags } from "../target.js";
import { withExample } from "../util.js";

interface StreamsFlags extends TargetFlags {
  state?: string;
  limit?: string;
  cursor?: string;
}

interface StreamsPage {
  function: string;
  live: number;
  ended: number;
  streams: StreamSummary[];
  next: string | null;
}

export function registerStreams(program: Command): void {
  const cmd = withTarget(
    program
      .command("streams")
      .description("list a function's live and recently ended streams, newest first: state, age, events, outputs, error")
      .argument("<function>", "function name")
      .addOption(new Option("--state <state>", "only these").choices(["live", "ended", "waiting", "running", "completed", "failed"]))
      .option("--limit <n>", "at most this many (1-1000, default 50)")
      .option("--cursor <cursor>", "the page after the one that printed this cursor"),
  ).action(async (fn: string, flags: StreamsFlags) => {
    if (flags.limit !== undefined && !/^\d{1,4}$/.test(flags.limit)) {
      throw new StreamfnError("INVALID_REQUEST", `--limit takes a count 1-1000, got "${flags.limit}"`);
    }
    const q = new URLSearchParams();
    if (flags.state) q.set("state", flags.state);
    if (flags.limit) q.set("limit", flags.limit);
    if (flags.cursor) q.set("cursor", flags.cursor);
    const query = q.size ? `?${q}` : "";
    const page = await callServer<StreamsPage>(serverOf(flags), "GET", `/v1/functions/${encodeURIComponent(fn)}/streams${query}`);
    if (flags.json) return printJson(page);
    if (page.streams.length === 0) {
      console.log(`no ${flags.state ? `${flags.state} ` : ""}streams of ${fn} (${page.live} live, ${page.ended} recently ended)`);
      return;
    }
    const rows = page.streams.map((s) => [
      s.id,
      s.state,
      s.version ?? "-",
      formatAgo(s.ageMs),
      s.durationMs === null ? `${formatDuration(s.ageMs)} so far` : formatDuration(s.durationMs),
      String(s.events),
      String(s.outputs),
      s.error ? `${s.error.code}: ${s.error.message}` : (s.reason ?? ""),
    ]);
    console.log(renderTable(["STREAM", "STATE", "VERSION", "OPENED", "DURATION", "EVENTS", "OUTPUTS", "END / ERROR"], rows));
    console.log(`\n${page.live} live, ${page.ended} recently ended`);
    if (page.next) console.log(`more: streamfn streams ${fn} --cursor ${page.next}${flags.state ? ` --state ${flags.state}` : ""}`);
  });
  withExample(cmd, "streamfn streams enrich --state failed --limit 20");
}
