import { isAbsolute, relative } from "node:path";
import { fileURLToPath } from "node:url";

/** How to run this CLI from the current directory: a path when run from a checkout, else the bin name. */
export function selfCommand(): string {
  const bin = fileURLToPath(new URL("../../../bin/streamfn.js", import.meta.url));
  const rel = relative(process.cwd(), bin);
  if (rel.split(/[\\/]/).includes("node_modules")) return "npx streamfn";
  return rel.startsWith("..") || isAbsolute(rel) ? "npx streamfn" : `node ${rel}`;
}

/** Commander collector for repeatable options. */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

const kExamples = new WeakMap<object, string[]>();

/**
 * Adds `Example:` lines to a command's help, and records them so `streamfn --help` can list
 * one example per command.
 */
export function withExample<T extends { addHelpText(position: "after", text: string): unknown }>(cmd: T, ...lines: string[]): T {
  kExamples.set(cmd, lines);
  cmd.addHelpText("after", `\nExample${lines.length > 1 ? "s" : ""}:\n${lines.map((l) => `  $ ${l}`).join("\n")}\n`);
  return cmd;
}

export function examplesOf(cmd: object): string[] {
  return kExamples.get(cmd) ?? [];
}
