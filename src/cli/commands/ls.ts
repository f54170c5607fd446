import type { Command } from "commander";
import type { FunctionSummary } from "../../control/functions.js";
import { callServer } from "../client.js";
import { renderTable } from "../format.js";
import { printJson, serverOf, withTarget } from "../target.js";
import type { TargetFlags } from "../target.js";
import { withExample } from "../util.js";

export function registerLs(program: Command): void {
  const cmd = withTarget(
    program.command("ls").description("list the functions a running server serves: versions, instances, live streams"),
  ).action(async (flags: TargetFlags) => {
    const { functions } = await callServer<{ functions: FunctionSummary[] }>(serverOf(flags), "GET", "/v1/functions");
    if (flags.json) return printJson(functions);
    if (functions.length === 0) {
      console.log("no functions (add files to the served directory, or `streamfn deploy`)");
      return;
    }
    const rows = functions.map((f) => [
      f.name,
      f.version ?? "(retired)",
      f.retiring.join(",") || "-",
      f.source,
      String(f.instances),
      String(f.liveStreams),
      String(f.queuedStreams),
      String(f.coldStarts),
    ]);
    console.log(renderTable(["FUNCTION", "VERSION", "RETIRING", "SOURCE", "INSTANCES", "LIVE", "QUEUED", "COLD STARTS"], rows));
  });
  withExample(cmd, "streamfn ls --url http://127.0.0.1:8080");
}
