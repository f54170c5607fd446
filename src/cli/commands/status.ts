import type { Command } from "commander";
import type { ServerStatus } from "../../server/status.js";
import { callServer } from "../client.js";
import { formatDuration, formatMiB, renderTable } from "../format.js";
import { printJson, serverOf, withTarget } from "../target.js";
import type { TargetFlags } from "../target.js";
import { withExample } from "../util.js";

export function registerStatus(program: Command): void {
  const cmd = withTarget(
    program.command("status").description("a running server at a glance: uptime, functions, live and queued streams, memory"),
  ).action(async (flags: TargetFlags) => {
    const target = serverOf(flags);
    const s = await callServer<ServerStatus>(target, "GET", "/v1/status");
    if (flags.json) return printJson(s);
    const serving = s.functions.filter((f) => f.version !== null);
    const lines: [string, string][] = [
      ["server", `${target.url} (pid ${s.process.pid}, node ${s.process.node})`],
      ["uptime", `${formatDuration(s.process.uptimeSeconds * 1000)} (since ${s.startedAt})`],
      ["functions", `${serving.length}${serving.length ? ` (${serving.map((f) => f.name).join(", ")})` : ""}`],
      ["streams", `${s.liveStreams} live, ${s.queuedStreams} waiting for a slot`],
      ["memory", `${formatMiB(s.process.rssBytes)} resident, ${formatMiB(s.process.heapUsedBytes)} heap`],
      ["watching", s.watching ? "yes: file changes are deployed" : "no"],
    ];
    for (const [k, v] of lines) console.log(`${k.padEnd(10)}  ${v}`);
    if (s.functions.length > 0) {
      console.log("");
      const rows = s.functions.map((f) => [
        f.name,
        f.version ?? "(retired)",
        String(f.versions.length),
        String(f.versions.reduce((n, v) => n + v.instances.length, 0)),
        String(f.liveStreams),
        String(f.queuedStreams),
      ]);
      console.log(renderTable(["FUNCTION", "VERSION", "VERSIONS", "INSTANCES", "LIVE", "QUEUED"], rows));
    }
  });
  withExample(cmd, "streamfn status --url http://127.0.0.1:8080");
}
