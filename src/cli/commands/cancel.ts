import type { Command } from "commander";
import type { ErrorRecord } from "../../api/errors.js";
import { callServer } from "../client.js";
import { printJson, serverOf, withTarget } from "../target.js";
import type { TargetFlags } from "../target.js";
import { withExample } from "../util.js";

interface Cancelled {
  function: string;
  streamId: string;
  version: string;
  events: number;
  outputs: number;
  error: ErrorRecord;
}

export function registerCancel(program: Command): void {
  const cmd = withTarget(
    program
      .command("cancel")
      .description("end a live stream now: it fails with STREAM_CANCELLED, its producer gets the end record, its handler's ctx.signal fires")
      .argument("<function>", "function name")
      .argument("<streamId>", "the stream's id")
      .option("--reason <text>", "why, added to the error message the producer gets"),
  ).action(async (fn: string, id: string, flags: TargetFlags & { reason?: string }) => {
    const query = flags.reason ? `?reason=${encodeURIComponent(flags.reason)}` : "";
    const r = await callServer<Cancelled>(
      serverOf(flags),
      "DELETE",
      `/v1/functions/${encodeURIComponent(fn)}/streams/${encodeURIComponent(id)}${query}`,
    );
    if (flags.json) return printJson(r);
    console.log(`cancelled stream ${r.streamId} of ${r.function}@${r.version} after ${r.events} events and ${r.outputs} outputs (${r.error.code}: ${r.error.message})`);
  });
  withExample(cmd, "streamfn cancel enrich ride-42 --reason 'stuck on a bad input'");
}
