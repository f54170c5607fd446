import type { Command } from "commander";
import { StreamfnError, isErrorCode } from "../../api/errors.js";
import type { StreamLogEntry } from "../../router/stream-log.js";
import { authHeaders, callServer, errorFromBody, kTargetHelp, targetFrom } from "../client.js";
import type { ServerTarget } from "../client.js";
import { withExample } from "../util.js";

interface LogsFlags {
  follow?: boolean;
  json?: boolean;
  url?: string;
  token?: string;
}

/** A line as the routes send it; a function follow adds the stream and version. */
type LineRecord = StreamLogEntry & { type?: "log"; streamId?: string; version?: string };

export function registerLogs(program: Command): void {
  const cmd = program
    .command("logs")
    .description("print a stream's ctx.log lines (the last ones the server keeps), or follow a stream or every stream of a function")
    .argument("<function>", "function name")
    .argument("[streamId]", "stream id; without it, --follow prints every stream's lines as they happen")
    .option("-f, --follow", "keep printing new lines (until the stream ends; for a whole function until interrupted)")
    .option("--json", "print the server's records as JSON, one per line")
    .option("--url <url>", "server URL")
    .option("--token <token>", "bearer token")
    .addHelpText("after", `\n${kTargetHelp}\nLines print as "time level [function/stream] message"; coloured on a terminal (NO_COLOR turns it off).\n`)
    .action(async (fn: string, streamId: string | undefined, opts: LogsFlags) => {
      const target = targetFrom(opts);
      const printer = new LinePrinter(fn, streamId, opts.json === true);
      if (!streamId && !opts.follow) {
        throw new StreamfnError("INVALID_REQUEST", "give a stream id, or --follow to follow every stream of the function");
      }
      const base = `/v1/functions/${encodeURIComponent(fn)}`;
      if (!opts.follow) {
        const body = await callServer<{ lines: StreamLogEntry[]; dropped: number }>(target, "GET", `${base}/streams/${encodeURIComponent(streamId!)}/logs`);
        if (opts.json) {
          process.stdout.write(`${JSON.stringify(body)}\n`);
          return;
        }
        if (body.dropped > 0) process.stderr.write(`streamfn: ${body.dropped} earlier line${body.dropped === 1 ? " is" : "s are"} no longer kept\n`);
        for (const line of body.lines) printer.line(line);
        return;
      }
      const path = streamId ? `${base}/streams/${encodeURIComponent(streamId)}/logs?follow=1` : `${base}/logs?follow=1`;
      await follow(target, path, (record) => printer.record(record));
      if (printer.sawEnd) return;
      if (printer.sawError) process.exitCode = 1; // --json: the error record is printed already
      else throw new StreamfnError("INTERNAL", "the server closed the log stream without saying why");
    });
  withExample(cmd, "streamfn logs echo ride-42", "streamfn logs echo -f");
}

/** Reads an NDJSON follow response until the server ends it (or the process is interrupted). */
async function follow(target: ServerTarget, path: string, onRecord: (record: Record<string, unknown>) => void): Promise<void> {
  let res: Response;
  try {
    res = await fetch(target.url + path, { headers: authHeaders(target) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new StreamfnError("INTERNAL", `cannot reach the server at ${target.url}: ${cause?.code ?? cause?.message ?? (err as Error).message} (set --url or STREAMFN_URL)`);
  }
  if (!res.ok || !res.body) throw errorFromBody(res.status, await res.text());
  if (process.stderr.isTTY) process.stderr.write(`streamfn: following ${path.split("?")[0]} (Ctrl-C to stop)\n`);
  const decoder = new TextDecoder();
  let buf = "";
  try {
    for await (const chunk of res.body) {
      buf += decoder.decode(chunk as Uint8Array, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line) onRecord(JSON.parse(line) as Record<string, unknown>);
      }
    }
  } catch (err) {
    if (err instanceof StreamfnError) throw err; // a record the server sent (error), not the connection
    throw new StreamfnError("INTERNAL", `the log stream broke off: ${(err as Error).message}`);
  }
}

const kLevelColor: Record<string, string> = { info: "\x1b[36m", warn: "\x1b[33m", error: "\x1b[31m" };

/** `time level [function/stream] message`, or the records as they came with --json. */
class LinePrinter {
  readonly #color = process.stdout.isTTY === true && !process.env.NO_COLOR;
  /** The stream's end record came: the follow ended as it should. */
  sawEnd = false;
  sawError = false;

  constructor(
    readonly functionName: string,
    readonly streamId: string | undefined,
    readonly json: boolean,
  ) {}

  record(r: Record<string, unknown>): void {
    if (r.type === "end") this.sawEnd = true;
    if (r.type === "error") this.sawError = true;
    if (this.json) {
      process.stdout.write(`${JSON.stringify(r)}\n`);
      return;
    }
    if (r.type === "log") this.line(r as unknown as LineRecord);
    else if (r.type === "end") {
      const e = r.error as { code: string; message: string } | undefined;
      const dropped = Number(r.dropped ?? 0);
      process.stderr.write(
        `streamfn: the stream ${r.status === "failed" ? `failed (${e?.code ?? "?"}: ${e?.message ?? ""})` : `${String(r.status)} (${String(r.reason)})`}` +
          `${dropped > 0 ? `; ${dropped} of its lines were not kept` : ""}\n`,
      );
    } else if (r.type === "error") {
      throw new StreamfnError(isErrorCode(r.code) ? r.code : "INTERNAL", String(r.message));
    }
  }

  line(l: LineRecord): void {
    const time = new Date(l.time).toISOString();
    const level = l.level.padEnd(5);
    const where = `[${this.functionName}/${l.streamId ?? this.streamId ?? "?"}]`;
    const text = this.#color
      ? `\x1b[2m${time}\x1b[0m ${kLevelColor[l.level] ?? ""}${level}\x1b[0m \x1b[2m${where}\x1b[0m ${l.msg}`
      : `${time} ${level} ${where} ${l.msg}`;
    process.stdout.write(`${text}\n`);
  }
}
