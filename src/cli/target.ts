import type { Command } from "commander";
import { kTargetHelp, targetFrom } from "./client.js";
import type { ServerTarget } from "./client.js";

export interface TargetFlags {
  url?: string;
  token?: string;
  json?: boolean;
}

/** The flags of a command that talks to a running server: --url, --token, --json. */
export function withTarget(cmd: Command): Command {
  return cmd
    .option("--url <url>", "server URL")
    .option("--token <token>", "bearer token of the server")
    .option("--json", "print the server's answer as JSON (for scripts)")
    .addHelpText("after", `\n${kTargetHelp}`);
}

export function serverOf(flags: TargetFlags): ServerTarget {
  return targetFrom({ url: flags.url, token: flags.token });
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
