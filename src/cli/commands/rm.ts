import type { Command } from "commander";
import { callServer } from "../client.js";
import { printJson, serverOf, withTarget } from "../target.js";
import type { TargetFlags } from "../target.js";
import { withExample } from "../util.js";

interface Retired {
  name: string;
  version: string | null;
  removedUpload: boolean;
  file: string | null;
  note: string | null;
}

export function registerRm(program: Command): void {
  const cmd = withTarget(
    program
      .command("rm")
      .description("retire a function on a running server: no new streams, running ones finish; its uploaded copy is deleted")
      .argument("<function>", "function name"),
  ).action(async (fn: string, flags: TargetFlags) => {
    const target = serverOf(flags);
    const r = await callServer<Retired>(target, "DELETE", `/v1/functions/${encodeURIComponent(fn)}`);
    if (flags.json) return printJson(r);
    console.log(
      `retired ${r.name}${r.version ? `@${r.version}` : ""}: no new streams, running ones finish on it` +
        (r.removedUpload ? "; its uploaded copy is deleted" : ""),
    );
    if (r.note) console.log(`note: ${r.note}`);
  });
  withExample(cmd, "streamfn rm enrich --url http://127.0.0.1:8080");
}
