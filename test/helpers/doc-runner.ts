// Runs the shell commands of a Markdown guide, in order, so the guide cannot drift from what
// works. Every ```sh block runs unless marked; a mark is an HTML comment right before the block
// (invisible when rendered):
//
//   <!-- test: skip -->                  not run (e.g. what the test does its own way)
//   <!-- test: background ready=/re/ --> one command left running (a server); the next block
//                                        runs once its output matches /re/
//   <!-- test: expect=/re/ -->           the block's stdout must match /re/
//   <!-- test: wait=/re/ -->             after the block, wait until a background command
//                                        prints a line matching /re/ (a reload)
//   <!-- test: stop -->                  stop the background commands first (the reader's Ctrl-C)
//
// Lines run one at a time with sh in the guide's current directory; `cd dir` lines move it.
import { resolve } from "node:path";
import { Background, assertRan, run } from "./processes.js";

export interface ShBlock {
  /** 1-based line of the opening fence. */
  line: number;
  commands: string[];
  marks: Record<string, string | true>;
}

export function shBlocks(markdown: string): ShBlock[] {
  const lines = markdown.split("\n");
  const blocks: ShBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.trim() !== "```sh") continue;
    const marks = parseMarks(i > 0 ? lines[i - 1]! : "");
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && lines[j]!.trim() !== "```"; j++) body.push(lines[j]!);
    if (j === lines.length) throw new Error(`unclosed sh block at line ${i + 1}`);
    blocks.push({ line: i + 1, commands: joinContinuations(body), marks });
    i = j;
  }
  return blocks;
}

function parseMarks(line: string): Record<string, string | true> {
  const m = /^<!--\s*test:(.*)-->\s*$/.exec(line.trim());
  const marks: Record<string, string | true> = {};
  if (!m) return marks;
  for (const part of m[1]!.match(/\w+=\/(?:\\.|[^/])*\/|\w+/g) ?? []) {
    const eq = part.indexOf("=");
    if (eq === -1) marks[part] = true;
    else marks[part.slice(0, eq)] = part.slice(eq + 2, -1);
  }
  return marks;
}

function joinContinuations(body: string[]): string[] {
  const out: string[] = [];
  let pending = "";
  for (const raw of body) {
    if (raw.trimEnd().endsWith("\\")) {
      pending += raw.trimEnd().slice(0, -1) + " ";
      continue;
    }
    const line = (pending + raw).trim();
    pending = "";
    if (line && !line.startsWith("#")) out.push(line);
  }
  return out;
}

export interface GuideRun {
  /** Background commands still running: the caller stops them (see stop()). */
  background: Background[];
  /** The guide's directory after its last `cd`. */
  cwd: string;
  stop(): Promise<void>;
}

/** Runs the blocks in order from `cwd` with `env`; throws naming the guide line that failed. */
export async function runGuide(blocks: ShBlock[], options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs?: number; log?: (line: string) => void }): Promise<GuideRun> {
  let cwd = options.cwd;
  const background: Background[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(background.map((b) => b.stop()));
  };
  try {
    for (const block of blocks) {
      if (block.marks.skip) continue;
      const where = `guide line ${block.line}`;
      if (block.marks.stop) {
        options.log?.("^C (background commands)");
        await stop();
        background.length = 0;
      }
      const since = background.map((b) => b.output.length);
      if (block.marks.background) {
        if (block.commands.length !== 1) throw new Error(`${where}: a background block has one command`);
        options.log?.(`$ ${block.commands[0]} &`);
        const b = new Background("sh", ["-c", block.commands[0]!], { cwd, env: options.env });
        background.push(b);
        if (typeof block.marks.ready === "string") await b.waitFor(new RegExp(block.marks.ready), options.timeoutMs);
        continue;
      }
      let stdout = "";
      for (const command of block.commands) {
        const cd = /^cd\s+(\S+)$/.exec(command);
        options.log?.(`$ ${command}`);
        if (cd) {
          cwd = resolve(cwd, cd[1]!);
          continue;
        }
        const r = await run("sh", ["-c", command], { cwd, env: options.env });
        stdout += r.stdout;
        assertRan(`${where}: ${command}`, r);
      }
      if (typeof block.marks.expect === "string" && !new RegExp(block.marks.expect).test(stdout)) {
        throw new Error(`${where}: output does not match /${block.marks.expect}/:\n${stdout}`);
      }
      if (typeof block.marks.wait === "string") {
        const pattern = new RegExp(block.marks.wait);
        await waitAny(background, since, pattern, options.timeoutMs ?? 30_000, where);
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { background, cwd, stop };
}

/** Waits until one background command prints, after `since`, output that matches. */
async function waitAny(background: Background[], since: number[], pattern: RegExp, timeoutMs: number, where: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!background.some((b, i) => pattern.test(b.output.slice(since[i] ?? 0)))) {
    if (Date.now() > deadline) throw new Error(`${where}: no background output matched ${pattern}; got:\n${background.map((b) => b.output).join("\n---\n")}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
