import type { Command } from "commander";
import { StreamfnError } from "../../api/errors.js";
import { kTargetHelp, targetFrom } from "../client.js";
import type { FrameFormat } from "../send/frames.js";
import type { sendStream } from "../send/send.js";
import { kVideoExtensions } from "../send/sources.js";
import { withExample } from "../util.js";

interface SendFlags {
  url?: string;
  token?: string;
  stream?: string;
  envelopes?: boolean;
  binary?: boolean;
  video?: boolean;
  fps?: number;
  scale?: string;
  frameFormat?: string;
  ffmpeg?: string;
  rate?: number;
  http?: boolean;
  progress: boolean;
}

function positive(flag: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === "" || !Number.isFinite(n) || n <= 0) throw new StreamfnError("INVALID_OPTIONS", `${flag} must be a number above 0, got ${JSON.stringify(v)}`);
    return n;
  };
}

/** `320` keeps the aspect ratio (320:-2); `320:240` and `-2:240` go to ffmpeg's scale filter as they are. */
export function parseScale(v: string): string {
  if (/^\d+$/.test(v) && Number(v) > 0) return `${v}:-2`;
  if (/^(\d+|-1|-2):(\d+|-1|-2)$/.test(v) && !/^-\d:-\d$/.test(v)) return v;
  throw new StreamfnError("INVALID_OPTIONS", `--scale takes WIDTH or WIDTH:HEIGHT (-2 for "keep the aspect ratio"), got ${JSON.stringify(v)}`);
}

export function registerSend(program: Command): void {
  const cmd = program
    .command("send")
    .summary("stream events to a function and print its outputs as they arrive")
    .description(
      "stream events to a function and print its outputs as they arrive (one JSON record per line): " +
        "NDJSON lines from a file or stdin, the files of a directory, or the frames of a video",
    )
    .argument("<function>", "function name")
    .argument(
      "[input]",
      `a file of one JSON value per line, - for stdin (the default), a directory (one binary event per file, in name order), or a video (${kVideoExtensions.join(" ")}; one binary event per frame)`,
    )
    .option("--url <url>", "server URL")
    .option("--token <token>", "bearer token")
    .option("--stream <id>", "stream id (default: the server names it)")
    .option("--envelopes", 'lines are whole envelopes ({"data":…,"seq":n} or {"end":true}) rather than bare payloads')
    .option("--binary", "send the file's (or stdin's) whole contents as one binary event")
    .option("--video", "the input is a video whatever its name (needs ffmpeg)")
    .option("--fps <n>", "video: frames per second to extract (default: every frame)", positive("--fps"))
    .option("--scale <w[:h]>", "video: resize frames, e.g. 320 (height follows) or 320:240", parseScale)
    .option("--frame-format <format>", "video: jpeg or png", "jpeg")
    .option("--ffmpeg <path>", "video: the ffmpeg binary (default: FFMPEG_PATH, then ffmpeg on PATH, then @ffmpeg-installer/ffmpeg)")
    .option("--rate <n>", "send at most n events per second, evenly spaced (30 plays a video at 30 fps)", positive("--rate"))
    .option("--http", "use the HTTP NDJSON route instead of a WebSocket (text events only)")
    .option("--no-progress", "no progress line on stderr (it only shows on a terminal anyway)")
    .addHelpText(
      "after",
      `\n${kTargetHelp}\nEvery line is checked before the stream opens; from stdin, a bad line is skipped with a warning\nand the exit code is 1. The exit code is 0 only when the stream completed and the server\nrefused none of its events.`,
    )
    .action(async (fn: string, input: string | undefined, flags: SendFlags) => {
      const { sendStream } = await import("../send/send.js");
      process.exitCode = await sendStream(optionsFrom(fn, input, flags));
    });
  withExample(
    cmd,
    "streamfn send echo events.ndjson",
    `printf '{"hello":1}\\n{"hello":2}\\n' | streamfn send echo --url http://127.0.0.1:8080`,
    "streamfn send byte-stats ./images/",
    "streamfn send video-analyzer clip.mp4 --rate 30 --scale 320",
  );
}

function optionsFrom(fn: string, input: string | undefined, f: SendFlags): Parameters<typeof sendStream>[0] {
  const format = f.frameFormat ?? "jpeg";
  if (format !== "jpeg" && format !== "png") throw new StreamfnError("INVALID_OPTIONS", `--frame-format must be jpeg or png, got ${JSON.stringify(format)}`);
  if (f.binary && f.video) throw new StreamfnError("INVALID_OPTIONS", "--binary and --video do not go together: a video is sent frame by frame");
  if (f.envelopes && (f.binary || f.video)) throw new StreamfnError("INVALID_OPTIONS", "--envelopes is for NDJSON lines, not binary input");
  return {
    functionName: fn,
    path: input === undefined || input === "-" ? undefined : input,
    target: targetFrom(f),
    stream: f.stream,
    envelopes: f.envelopes ?? false,
    binary: f.binary ?? false,
    video: f.video ?? false,
    fps: f.fps,
    scale: f.scale,
    frameFormat: format as FrameFormat,
    ffmpeg: f.ffmpeg,
    rate: f.rate,
    http: f.http ?? false,
    progress: f.progress,
  };
}
