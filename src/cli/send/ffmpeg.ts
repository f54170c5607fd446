import { spawn } from "node:child_process";
import { accessSync, constants, statSync } from "node:fs";
import { createRequire } from "node:module";
import { delimiter, join } from "node:path";
import { StreamfnError } from "../../api/errors.js";

export const kHowToGetFfmpeg =
  "install ffmpeg (https://ffmpeg.org/download.html; e.g. `apt install ffmpeg`, `brew install ffmpeg`), " +
  "point --ffmpeg <path> or FFMPEG_PATH at a binary, or `npm install @ffmpeg-installer/ffmpeg`";

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * The ffmpeg binary to decode video with: `--ffmpeg`, then FFMPEG_PATH, then `ffmpeg` on
 * PATH, then the binary the optional `@ffmpeg-installer/ffmpeg` package ships, if it is
 * installed. A path given explicitly that is not an executable is an error, not skipped.
 */
export function findFfmpeg(explicit?: string): string {
  if (explicit !== undefined) {
    if (executable(explicit)) return explicit;
    throw new StreamfnError("INVALID_OPTIONS", `--ffmpeg ${explicit} is not an executable file`);
  }
  const fromEnv = process.env.FFMPEG_PATH;
  if (fromEnv) {
    if (executable(fromEnv)) return fromEnv;
    throw new StreamfnError("INVALID_OPTIONS", `FFMPEG_PATH=${fromEnv} is not an executable file`);
  }
  const names = process.platform === "win32" ? ["ffmpeg.exe"] : ["ffmpeg"];
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    for (const name of names) if (executable(join(dir, name))) return join(dir, name);
  }
  try {
    // Looked up at run time: the package is optional and not a dependency of the CLI.
    const pkg = createRequire(import.meta.url)("@ffmpeg-installer/ffmpeg") as { path?: unknown };
    if (typeof pkg.path === "string" && executable(pkg.path)) return pkg.path;
  } catch {
    // not installed
  }
  throw new StreamfnError("INVALID_REQUEST", `no ffmpeg found to read video frames: ${kHowToGetFfmpeg}`);
}

export interface FfmpegRun {
  stdout: NodeJS.ReadableStream;
  /** Resolves when ffmpeg exits: null on success, else what it said went wrong. */
  exited: Promise<string | null>;
  /** The input's duration and frame rate, once ffmpeg has described the input. */
  info(): { durationS?: number; fps?: number };
  kill(): void;
}

const kStderrTail = 4096;

/** Starts ffmpeg; its stderr is kept short: the input's description and the last few lines. */
export function startFfmpeg(bin: string, args: string[], stdin: "ignore" | NodeJS.ReadableStream): FfmpegRun {
  const child = spawn(bin, args, { stdio: [stdin === "ignore" ? "ignore" : "pipe", "pipe", "pipe"] });
  if (stdin !== "ignore") {
    stdin.pipe(child.stdin!);
    // ffmpeg stops reading when it has what it needs; that is not an error.
    child.stdin!.on("error", () => {});
  }
  const stdout = child.stdout!;
  const stderr = child.stderr!;
  let tail = "";
  const info: { durationS?: number; fps?: number } = {};
  stderr.setEncoding("utf8");
  stderr.on("data", (text: string) => {
    tail = (tail + text).slice(-kStderrTail);
    if (info.durationS === undefined) {
      const d = /Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)/.exec(tail);
      if (d) info.durationS = Number(d[1]) * 3600 + Number(d[2]) * 60 + Number(d[3]);
    }
    if (info.fps === undefined) {
      const f = /Stream #0:\d+[^\n]*Video:[^\n]*?, ([\d.]+) (?:fps|tbr)/.exec(tail);
      if (f) info.fps = Number(f[1]);
    }
  });
  const exited = new Promise<string | null>((resolve) => {
    child.once("error", (err) => resolve(`cannot run ${bin}: ${err.message}`));
    child.once("close", (code, signal) => {
      if (code === 0) resolve(null);
      else {
        const said = tail.trim().split("\n").slice(-4).join(" | ");
        resolve(`ffmpeg failed (${signal ?? `exit ${code}`}): ${said || "no message"}`);
      }
    });
  });
  return {
    stdout,
    exited,
    info: () => info,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    },
  };
}
