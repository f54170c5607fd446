import { StreamfnError, isErrorCode } from "../../api/errors.js";
import { callServer } from "../client.js";
import type { ServerTarget } from "../client.js";
import { HttpTransport } from "./http-transport.js";
import { Pacer } from "./pacer.js";
import { ProgressBar } from "./progress.js";
import { inputKind, openSource } from "./sources.js";
import type { InputSpec, Item, Source } from "./sources.js";
import type { Transport } from "./transport.js";
import { WsTransport } from "./ws-transport.js";

export interface SendOptions extends Omit<InputSpec, "warn"> {
  functionName: string;
  target: ServerTarget;
  stream?: string | undefined;
  http: boolean;
  /** Events per second; undefined sends as fast as the server takes them. */
  rate?: number | undefined;
  progress: boolean;
}

export interface SendIo {
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
}

interface EndSeen {
  status?: string;
  reason?: string;
  error?: { code?: unknown; message?: unknown };
}

/**
 * Sends one stream: checks the input, opens the stream, sends every event (paced when asked),
 * prints every record the server sends back as it arrives, and returns the exit code: 0 only
 * when the stream completed with every event: none skipped here, none refused by the server.
 */
export async function sendStream(opts: SendOptions, io: SendIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  let bar: ProgressBar | undefined;
  const warn = (text: string): void => (bar ? bar.print(io.stderr, text) : void io.stderr.write(text));
  const spec: InputSpec = { ...opts, warn };
  const kind = await inputKind(spec);
  if (kind !== "video" && (opts.fps !== undefined || opts.scale !== undefined || opts.ffmpeg !== undefined)) {
    throw new StreamfnError("INVALID_OPTIONS", `--fps, --scale and --ffmpeg are for video input; ${opts.path ?? "stdin"} is not one (use --video if it is)`);
  }
  if (opts.http && kind !== "ndjson") {
    throw new StreamfnError(
      "INVALID_REQUEST",
      `${kind === "dir" ? "a directory's files" : kind === "video" ? "video frames" : "--binary input"} are binary events, which the HTTP NDJSON route cannot carry (it has no binary, and base64 would reach the handler as a string): drop --http to send over WebSocket`,
    );
  }
  const source = await openSource(spec, kind);

  let sent = 0;
  let outputs = 0;
  let end: EndSeen | undefined;
  let inputEnded = false;
  /** Events the server refused (too large, bad envelope…): the stream went on without them. */
  let refused = 0;
  let firstRefused: string | undefined;
  const halt = new AbortController();
  const onRecord = (line: string): void => {
    if (line.startsWith('{"type":"output"')) outputs++;
    else if (line.startsWith('{"type":"error"') && /"code":"STREAM_(INPUT_)?ENDED"/.test(line)) {
      // The server ended the input (max-events, the handler returned): more events only earn
      // more of these, and a flood of them gets the connection cut before the end record.
      inputEnded = true;
      halt.abort();
    } else if (line.startsWith('{"type":"error"') && line.includes('"code":"RATE_LIMITED"')) {
      // The server holds the stream back (reads on once the rate allows); nothing was refused.
    } else if (line.startsWith('{"type":"error"')) {
      refused++;
      firstRefused ??= describeError(line);
    } else if (line.startsWith('{"type":"end"')) {
      try {
        end = JSON.parse(line) as EndSeen;
      } catch {
        end = {};
      }
    }
    if (bar) bar.print(io.stdout, `${line}\n`);
    else io.stdout.write(`${line}\n`);
  };
  const maxEvents = opts.envelopes ? undefined : await maxEventsOf(opts.target, opts.functionName);
  const transport: Transport = opts.http
    ? new HttpTransport(opts.target, opts.functionName, opts.stream, onRecord)
    : new WsTransport(opts.target, opts.functionName, opts.stream, onRecord);
  try {
    await transport.open();
  } catch (err) {
    source.close();
    throw err;
  }

  const started = performance.now();
  bar = new ProgressBar(
    io.stderr,
    () => {
      const total = source.total();
      return { sent, total: total?.n, approx: total?.approx ?? false, outputs, elapsedMs: performance.now() - started };
    },
    // Someone typing events at the terminal does not want a bar redrawn over their typing.
    opts.progress && !(opts.path === undefined && kind === "ndjson" && process.stdin.isTTY),
  );

  // Ctrl-C ends the input: the function finishes with what it got and its last outputs print.
  // A second one gives up at once.
  let stopping = false;
  const onSigint = (): void => {
    if (stopping) process.exit(130);
    stopping = true;
    warn("streamfn: ending the input (Ctrl-C again to quit)\n");
    halt.abort();
  };
  process.on("SIGINT", onSigint);
  void transport.closed.then(() => halt.abort());

  let sourceError: unknown;
  const pacer = new Pacer(opts.rate);
  const items = source.items();
  try {
    while (!halt.signal.aborted && transport.live) {
      const next = await nextOrHalt(items, halt.signal);
      if (next === undefined || next.done) break;
      if (maxEvents !== undefined && sent >= maxEvents) {
        // The server would end the input here anyway and refuse every event after it.
        warn(`streamfn: ${opts.functionName} takes at most ${maxEvents} events per stream (its maxEvents); the rest of the input was not sent\n`);
        break;
      }
      await pacer.wait(halt.signal);
      if (halt.signal.aborted || !transport.live) break;
      await transport.send(next.value);
      sent++;
    }
  } catch (err) {
    if (!stopping) sourceError = err;
  } finally {
    source.close();
    void items.return(undefined).catch(() => {});
  }
  // An end message after the server ended the input would only be refused; the HTTP body
  // still has to be closed.
  if (!inputEnded || opts.http) transport.end();
  await transport.closed;
  bar.stop();
  process.off("SIGINT", onSigint);
  let code = finish(io, source, end as EndSeen | undefined, sourceError, { sent, outputs, ms: performance.now() - started, tty: opts.progress && io.stderr.isTTY });
  if (refused > 0) {
    io.stderr.write(`streamfn: the server refused ${refused} event${refused === 1 ? "" : "s"} (first: ${firstRefused}); see the error records\n`);
    code = code === 0 ? 1 : code;
  }
  // Interrupted: not all of the input went, whatever the stream made of what did.
  return stopping && code === 0 ? 130 : code;
}

function describeError(line: string): string {
  try {
    const e = JSON.parse(line) as { code?: unknown; message?: unknown };
    return `${String(e.code)}: ${String(e.message)}`;
  } catch {
    return line.slice(0, 200);
  }
}

/**
 * The function's maxEvents, from the server's status, or undefined when it cannot be had
 * (then the server's own refusals are all there is). Not for --envelopes: duplicates there do
 * not count toward the limit.
 */
async function maxEventsOf(target: ServerTarget, functionName: string): Promise<number | undefined> {
  try {
    const status = await callServer<{ functions?: { name: string; options?: { maxEvents?: unknown } | null }[] }>(target, "GET", "/v1/status");
    const max = status.functions?.find((f) => f.name === functionName)?.options?.maxEvents;
    return typeof max === "number" && Number.isSafeInteger(max) && max > 0 ? max : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The input's next event, or undefined once `signal` fires first: waiting for input (a quiet
 * stdin, a slow decoder) must not outlast the stream or a Ctrl-C.
 */
function nextOrHalt(items: AsyncGenerator<Item>, signal: AbortSignal): Promise<IteratorResult<Item> | undefined> {
  if (signal.aborted) return Promise.resolve(undefined);
  const pending = items.next();
  // Closing the input may make this read fail after it stopped mattering.
  pending.catch(() => {});
  return new Promise((resolve, reject) => {
    const onAbort = (): void => resolve(undefined);
    signal.addEventListener("abort", onAbort, { once: true });
    pending.then(
      (r) => {
        signal.removeEventListener("abort", onAbort);
        resolve(r);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}

function finish(io: SendIo, source: Source, end: EndSeen | undefined, sourceError: unknown, s: { sent: number; outputs: number; ms: number; tty: boolean }): number {
  if (s.tty && end) {
    io.stderr.write(`streamfn: stream ${end.status ?? "ended"} (${end.reason ?? "?"}): ${s.sent} events sent, ${s.outputs} outputs in ${(s.ms / 1000).toFixed(1)}s\n`);
  }
  let code = 0;
  if (sourceError !== undefined) {
    if (sourceError instanceof StreamfnError) io.stderr.write(`streamfn: ${sourceError.code}: ${sourceError.message}\n`);
    else io.stderr.write(`streamfn: INTERNAL: reading the input failed: ${(sourceError as Error).message ?? String(sourceError)}\n`);
    code = 1;
  }
  if (source.skipped > 0) {
    io.stderr.write(`streamfn: ${source.skipped} bad input line${source.skipped === 1 ? " was" : "s were"} skipped (first: ${source.firstSkipped})\n`);
    code = 1;
  }
  if (!end) {
    io.stderr.write("streamfn: INTERNAL: the connection closed before the stream's end record\n");
    return 1;
  }
  if (end.status !== "completed") {
    const e = end.error;
    const errCode = e && isErrorCode(e.code) ? e.code : "INTERNAL";
    io.stderr.write(`streamfn: ${errCode}: the stream ${end.status ?? "ended"} (${end.reason ?? "?"})${e?.message ? `: ${String(e.message)}` : ""}\n`);
    return 1;
  }
  return code;
}
