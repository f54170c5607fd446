import { readFileSync } from "node:fs";
import { isAbsolute, relative } from "node:path";
import { fileURLToPath } from "node:url";

/** The directory of the running streamfn package (a checkout, or node_modules/streamfn). */
export function packageDir(): string {
  return fileURLToPath(new URL("../../../", import.meta.url));
}

/** The version in the running package's package.json. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string }).version;
}

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

/** The top-level help's closing block: each command's first example, read when help is shown. */
export function commandExamples(commands: readonly { name(): string }[]): string {
  const lines = commands.flatMap((c) => examplesOf(c).slice(0, 1)).map((l) => `  $ ${l}`);
  return lines.length ? `\nExamples:\n${lines.join("\n")}\n` : "";
}
