import { createReadStream } from "node:fs";
import { access, readFile, readdir, stat } from "node:fs/promises";
import { constants } from "node:fs";
import { extname, join } from "node:path";
import { createInterface } from "node:readline";
import { StreamfnError } from "../../api/errors.js";
import { findFfmpeg, startFfmpeg } from "./ffmpeg.js";
import { FrameSplitter } from "./frames.js";
import type { FrameFormat } from "./frames.js";
import { checkLine } from "./lines.js";

/** One event on its way to the server: an envelope's text, or a binary payload. */
export type Item = { kind: "text"; text: string } | { kind: "binary"; bytes: Uint8Array };

export type InputKind = "ndjson" | "dir" | "video" | "binary";

export interface InputSpec {
  /** undefined: standard input. */
  path: string | undefined;
  envelopes: boolean;
  binary: boolean;
  video: boolean;
  fps?: number | undefined;
  /** ffmpeg scale filter arguments, e.g. `320:-2`. */
  scale?: string | undefined;
  frameFormat: FrameFormat;
  ffmpeg?: string | undefined;
  /** Where warnings about skipped standard-input lines go. */
  warn(message: string): void;
}

export interface Source {
  readonly kind: InputKind;
  /** Events to send when known before sending (approx: estimated from a video's duration). */
  total(): { n: number; approx: boolean } | undefined;
  items(): AsyncGenerator<Item>;
  /** Stops reading the input (kills ffmpeg, lets go of stdin). */
  close(): void;
  /** Standard-input lines that were not valid and were skipped. */
  readonly skipped: number;
  readonly firstSkipped: string | undefined;
}

export const kVideoExtensions = [".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"];
/** The server takes no WebSocket frame over 64 MiB: a bigger binary event cannot be sent at all. */
const kMaxBinaryBytes = 64 * 1024 * 1024;
/** Bad lines of a file listed in the error before the rest are only counted. */
const kBadLinesShown = 5;

function fsReason(err: unknown): string {
  const code = (err as { code?: string }).code;
  switch (code) {
    case "ENOENT":
      return "no such file or directory";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "EISDIR":
      return "is a directory";
    default:
      return (err as Error).message;
  }
}

function unreadable(path: string, err: unknown): StreamfnError {
  return new StreamfnError("INVALID_REQUEST", `cannot read ${path}: ${fsReason(err)}`);
}

/** What the input is: a directory, a video (by extension or --video), a binary file, or NDJSON. */
export async function inputKind(spec: InputSpec): Promise<InputKind> {
  if (spec.path === undefined) return spec.video ? "video" : spec.binary ? "binary" : "ndjson";
  let st;
  try {
    st = await stat(spec.path);
  } catch (err) {
    throw unreadable(spec.path, err);
  }
  if (st.isDirectory()) return "dir";
  try {
    await access(spec.path, constants.R_OK);
  } catch (err) {
    throw unreadable(spec.path, err);
  }
  if (spec.video || kVideoExtensions.includes(extname(spec.path).toLowerCase())) return "video";
  return spec.binary ? "binary" : "ndjson";
}

/**
 * Opens the input and checks everything that can be checked before a stream opens: files
 * exist and are readable, every line of an NDJSON file is valid, a directory has files, a
 * video has a first frame. Standard input cannot be read ahead; its bad lines are skipped as
 * they come, each with a warning.
 */
export async function openSource(spec: InputSpec, kind: InputKind): Promise<Source> {
  switch (kind) {
    case "ndjson":
      // A pipe (`<(jq -c . data.json)`, /dev/stdin) can be read only once: checked as it goes, like stdin.
      if (spec.path === undefined || !(await isRegularFile(spec.path))) return liveLines(spec);
      return await ndjsonFile(spec.path, spec.envelopes);
    case "dir":
      return await directory(spec.path!);
    case "binary":
      return await wholeInput(spec.path);
    case "video":
      return await video(spec);
  }
}

function fixed(kind: InputKind, n: number | undefined, items: () => AsyncGenerator<Item>, close: () => void = () => {}): Source {
  return { kind, total: () => (n === undefined ? undefined : { n, approx: false }), items, close, skipped: 0, firstSkipped: undefined };
}

async function ndjsonFile(path: string, envelopes: boolean): Promise<Source> {
  const events = await checkNdjsonFile(path, envelopes);
  let input: ReturnType<typeof createReadStream> | undefined;
  async function* items(): AsyncGenerator<Item> {
    input = createReadStream(path);
    const lines = createInterface({ input, crlfDelay: Infinity });
    let lineNo = 0;
    for await (const line of lines) {
      const wire = checkLine(line, ++lineNo, envelopes);
      if (wire === null) continue;
      if (wire.kind === "end") break;
      yield { kind: "text", text: wire.text };
    }
  }
  return fixed("ndjson", events, items, () => input?.destroy());
}

/** Reads the whole file once, line by line, and throws listing its first bad lines; else counts its events. */
export async function checkNdjsonFile(path: string, envelopes: boolean): Promise<number> {
  const input = createReadStream(path);
  const failed = new Promise<never>((_, reject) => input.once("error", (err) => reject(unreadable(path, err))));
  failed.catch(() => {});
  const lines = createInterface({ input, crlfDelay: Infinity });
  const bad: StreamfnError[] = [];
  let badCount = 0;
  let events = 0;
  let lineNo = 0;
  let endLine: number | undefined;
  const scan = (async () => {
    for await (const line of lines) {
      lineNo++;
      try {
        const wire = checkLine(line, lineNo, envelopes);
        if (wire === null) continue;
        if (endLine !== undefined) {
          throw new StreamfnError("INVALID_ENVELOPE", `line ${lineNo}: comes after the {"end":true} on line ${endLine}, which ends the input`);
        }
        if (wire.kind === "end") endLine = lineNo;
        else events++;
      } catch (err) {
        if (!(err instanceof StreamfnError)) throw err;
        badCount++;
        if (bad.length < kBadLinesShown) bad.push(err);
      }
    }
  })();
  await Promise.race([scan, failed]);
  if (badCount > 0) {
    const more = badCount > bad.length ? ` (${badCount - bad.length} more not shown)` : "";
    const lines = bad.map((e) => e.message).join("\n  ");
    throw new StreamfnError(bad[0]!.code, `${lines}\n  ${badCount} bad line${badCount === 1 ? "" : "s"} in ${path}${more}; nothing was sent`);
  }
  if (events === 0) throw new StreamfnError("INVALID_REQUEST", `${path} has no events (no non-blank lines)`);
  return events;
}

async function isRegularFile(path: string): Promise<boolean> {
  return (await stat(path)).isFile();
}

/** Lines of stdin or a pipe, checked as they come: a bad one is skipped with a warning. */
function liveLines(spec: InputSpec): Source {
  let skipped = 0;
  let firstSkipped: string | undefined;
  let lines: ReturnType<typeof createInterface> | undefined;
  let input: NodeJS.ReadableStream & { destroy(): void } | undefined;
  async function* items(): AsyncGenerator<Item> {
    // Made only now: lines read before iteration starts would be lost.
    input = spec.path === undefined ? process.stdin : createReadStream(spec.path);
    lines = createInterface({ input, crlfDelay: Infinity });
    let lineNo = 0;
    for await (const line of lines) {
      let wire;
      try {
        wire = checkLine(line, ++lineNo, spec.envelopes);
      } catch (err) {
        if (!(err instanceof StreamfnError)) throw err;
        skipped++;
        firstSkipped ??= `${err.code}: ${err.message}`;
        spec.warn(`streamfn: ${err.code}: ${err.message}; skipped\n`);
        continue;
      }
      if (wire === null) continue;
      if (wire.kind === "end") break;
      yield { kind: "text", text: wire.text };
    }
  }
  return {
    kind: "ndjson",
    total: () => undefined,
    items,
    close: () => {
      lines?.close();
      (input ?? process.stdin).destroy();
    },
    get skipped() {
      return skipped;
    },
    get firstSkipped() {
      return firstSkipped;
    },
  };
}

const kByName = new Intl.Collator("en", { numeric: true });

/** Every regular file of a directory, not hidden ones, in name order with numbers compared by value. */
async function directory(path: string): Promise<Source> {
  let entries;
  try {
    entries = await readdir(path, { withFileTypes: true });
  } catch (err) {
    throw unreadable(path, err);
  }
  const files: string[] = [];
  for (const e of entries) {
    if (e.name.startsWith(".")) continue;
    const full = join(path, e.name);
    if (e.isFile() || (e.isSymbolicLink() && (await stat(full).catch(() => undefined))?.isFile())) files.push(e.name);
  }
  if (files.length === 0) throw new StreamfnError("INVALID_REQUEST", `${path} has no files to send (hidden files and subdirectories are left out)`);
  files.sort(kByName.compare);
  for (const name of files) {
    const full = join(path, name);
    try {
      await access(full, constants.R_OK);
    } catch (err) {
      throw unreadable(full, err);
    }
    const { size } = await stat(full);
    if (size > kMaxBinaryBytes) throw tooBig(full, size);
  }
  async function* items(): AsyncGenerator<Item> {
    for (const name of files) {
      const full = join(path, name);
      let bytes: Buffer;
      try {
        bytes = await readFile(full);
      } catch (err) {
        throw unreadable(full, err);
      }
      yield { kind: "binary", bytes };
    }
  }
  return fixed("dir", files.length, items);
}

function tooBig(what: string, size: number): StreamfnError {
  return new StreamfnError("EVENT_TOO_LARGE", `${what} is ${size} bytes; one event can be at most ${kMaxBinaryBytes} bytes`);
}

/** A whole file (or all of standard input) as one binary event. */
async function wholeInput(path: string | undefined): Promise<Source> {
  let bytes: Buffer;
  if (path !== undefined && (await isRegularFile(path))) {
    const { size } = await stat(path);
    if (size > kMaxBinaryBytes) throw tooBig(path, size);
    bytes = await readFile(path);
  } else {
    // stdin or a pipe: no size up front, so the limit is checked while reading.
    const chunks: Buffer[] = [];
    let size = 0;
    const input = path === undefined ? process.stdin : createReadStream(path);
    try {
      for await (const chunk of input as AsyncIterable<Buffer>) {
        size += chunk.byteLength;
        if (size > kMaxBinaryBytes) throw tooBig(path ?? "standard input", size);
        chunks.push(chunk);
      }
    } finally {
      input.destroy();
    }
    bytes = Buffer.concat(chunks);
  }
  async function* items(): AsyncGenerator<Item> {
    yield { kind: "binary", bytes };
  }
  return fixed("binary", 1, items);
}

/** ffmpeg decodes the video and pipes images back to back; each becomes one binary event. */
async function video(spec: InputSpec): Promise<Source> {
  const bin = findFfmpeg(spec.ffmpeg);
  const filters: string[] = [];
  if (spec.fps !== undefined) filters.push(`fps=${spec.fps}`);
  if (spec.scale !== undefined) filters.push(`scale=${spec.scale}`);
  const codec = spec.frameFormat === "jpeg" ? ["-c:v", "mjpeg", "-q:v", "3", "-pix_fmt", "yuvj420p"] : ["-c:v", "png"];
  const fromStdin = spec.path === undefined;
  const args = [
    "-hide_banner",
    "-nostats",
    "-loglevel",
    "info",
    ...(fromStdin ? [] : ["-nostdin"]),
    "-i",
    fromStdin ? "pipe:0" : spec.path!,
    "-an",
    "-sn",
    "-dn",
    ...(filters.length > 0 ? ["-vf", filters.join(",")] : []),
    ...codec,
    "-f",
    "image2pipe",
    "-",
  ];
  const run = startFfmpeg(bin, args, fromStdin ? process.stdin : "ignore");
  const label = spec.path ?? "standard input";
  const splitter = new FrameSplitter(spec.frameFormat);
  async function* frames(): AsyncGenerator<Item> {
    try {
      for await (const chunk of run.stdout as AsyncIterable<Buffer>) {
        for (const bytes of splitter.push(chunk)) yield { kind: "binary", bytes };
      }
      const failure = await run.exited;
      if (failure) throw new StreamfnError("INVALID_REQUEST", `cannot read video ${label}: ${failure}`);
      if (splitter.pending > 0) throw new StreamfnError("INVALID_REQUEST", `ffmpeg's output for ${label} ended inside a frame (${splitter.pending} bytes)`);
    } finally {
      run.kill();
    }
  }
  // The first frame is decoded before any stream opens: a file ffmpeg cannot read fails here.
  const gen = frames();
  const first = await gen.next();
  if (first.done) throw new StreamfnError("INVALID_REQUEST", `no video frames in ${label}`);
  async function* items(): AsyncGenerator<Item> {
    yield first.value as Item;
    yield* gen;
  }
  return {
    kind: "video",
    total: () => {
      const info = run.info();
      const fps = spec.fps ?? info.fps;
      return info.durationS && fps ? { n: Math.max(1, Math.round(info.durationS * fps)), approx: true } : undefined;
    },
    items,
    close: () => run.kill(),
    skipped: 0,
    firstSkipped: undefined,
  };
}
