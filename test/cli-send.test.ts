// `streamfn send` as a real process against a real server: inputs, validation before any
// stream opens, pacing, both transports, video frames through ffmpeg.
import { strict as assert } from "node:assert";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { createWriteStream } from "node:fs";
import { createRequire } from "node:module";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { FrameSplitter } from "../src/cli/send/frames.js";
import { renderProgress } from "../src/cli/send/progress.js";
import { checkLine } from "../src/cli/send/lines.js";
import { fnSource } from "./helpers/contract-util.js";
import { parseMetrics } from "./helpers/metrics-text.js";
import { eventually, startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";

const hasScript = spawnSync("script", ["--version"]).status === 0;
const kMain = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const kFfmpeg = (createRequire(import.meta.url)("@ffmpeg-installer/ffmpeg") as { path: string }).path;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout's JSON records. */
  records: Record<string, unknown>[];
  ms: number;
}

/** Runs `streamfn send …` to its end; `input` is written to its stdin. */
function send(args: string[], opts: { env?: Record<string, string | undefined>; input?: string | Uint8Array } = {}): Promise<Run> {
  const env: Record<string, string | undefined> = { ...process.env, STREAMFN_URL: undefined, STREAMFN_TOKEN: undefined, ...opts.env };
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
  const started = Date.now();
  const child = spawn(process.execPath, [kMain, "send", ...args], { env: env as NodeJS.ProcessEnv, stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  child.stdin.end(opts.input ?? "");
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  return new Promise((resolve) => {
    child.once("close", (code) => {
      clearTimeout(timer);
      const records = stdout
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      resolve({ code, stdout, stderr, records, ms: Date.now() - started });
    });
  });
}

const outputsOf = (r: Run): unknown[] => r.records.filter((x) => x.type === "output").map((x) => x.data);
const endOf = (r: Run): Record<string, unknown> | undefined => r.records.find((x) => x.type === "end");

const echo = fnSource(`{ async *handler(events) { for await (const e of events) yield e; } }`);
// What each event is: a Uint8Array (its length and first bytes) or something else.
const lens = fnSource(`{
  async *handler(events) {
    for await (const e of events) yield e instanceof Uint8Array ? { bytes: e.byteLength, head: Array.from(e.subarray(0, 4)) } : { not: typeof e };
  },
}`);
const arrivals = fnSource(`{
  async handler(events, ctx) {
    const at = [];
    for await (const _ of events) at.push(ctx.event.receivedAt);
    return at;
  },
}`);
const bytesOut = fnSource(`{ async *handler(events) { for await (const e of events) yield new Uint8Array([1, 2, e]); } }`);

describe("streamfn send (a real process)", () => {
  let t: TestServer;
  let dir: string;
  const file = async (name: string, content: string | Uint8Array): Promise<string> => {
    const path = join(dir, name);
    await writeFile(path, content);
    return path;
  };
  const streamsOpened = async (): Promise<number> => {
    const text = await (await fetch(`${t.url}/metrics`)).text();
    const m = parseMetrics(text);
    return (m.value("streamfn_streams_opened_total") ?? 0) + m.series("streamfn_streams_refused_total").reduce((n, s) => n + s.value, 0);
  };

  before(async () => {
    t = await startTestServer({ "echo.ts": echo, "lens.ts": lens, "arrivals.ts": arrivals, "bytes-out.ts": bytesOut });
    dir = await mkdtemp(join(tmpdir(), "streamfn-send-"));
  });
  after(async () => {
    await t.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("sends an NDJSON file over WebSocket and over --http with the same records back", async () => {
    const path = await file("events.ndjson", '{"a":1}\n\n"two"\r\n[3]\n');
    const ws = await send(["echo", path, "--url", t.url]);
    const http = await send(["echo", path, "--url", t.url, "--http"]);
    for (const r of [ws, http]) {
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, "", "no progress line and no chatter without a terminal");
      assert.equal(r.records[0]!.type, "open");
      assert.deepEqual(outputsOf(r), [{ a: 1 }, "two", [3]]);
      assert.deepEqual(endOf(r), { type: "end", status: "completed", reason: "end", events: 3, outputs: 3 });
    }
    const strip = (r: Run) => r.records.filter((x) => x.type !== "open");
    assert.deepEqual(strip(ws), strip(http));
  });

  it("prints binary outputs the same way over both transports", async () => {
    const path = await file("nums.ndjson", "7\n9\n");
    const ws = await send(["bytes-out", path, "--url", t.url]);
    const http = await send(["bytes-out", path, "--url", t.url, "--http"]);
    const want = [
      { type: "output", n: 1, binary: true, base64: Buffer.from([1, 2, 7]).toString("base64") },
      { type: "output", n: 2, binary: true, base64: Buffer.from([1, 2, 9]).toString("base64") },
    ];
    for (const r of [ws, http]) {
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.records.filter((x) => x.type === "output"), want);
    }
  });

  it("reads stdin (no argument or -), over both transports", async () => {
    for (const args of [["echo"], ["echo", "-"], ["echo", "-", "--http"]]) {
      const r = await send([...args, "--url", t.url], { input: '{"x":1}\n{"x":2}\n' });
      assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
      assert.deepEqual(outputsOf(r), [{ x: 1 }, { x: 2 }], args.join(" "));
    }
  });

  it("skips a bad stdin line with a warning naming it, delivers the rest, and exits 1", async () => {
    const r = await send(["echo", "--url", t.url], { input: '{"x":1}\ngarbage\n{"x":3}\n' });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /INVALID_JSON: line 2: garbage is not valid JSON \(.+\); skipped/);
    assert.match(r.stderr, /1 bad input line was skipped/);
    assert.deepEqual(outputsOf(r), [{ x: 1 }, { x: 3 }]);
    assert.equal(endOf(r)!.status, "completed");
  });

  it("reads a named pipe (as from <(command)) as it comes, like stdin", async () => {
    const fifo = join(dir, "events.fifo");
    execFileSync("mkfifo", [fifo]);
    const running = send(["echo", fifo, "--url", t.url]);
    const w = createWriteStream(fifo);
    w.end('{"p":1}\nnope\n{"p":3}\n');
    const r = await running;
    assert.equal(r.code, 1, "a line was skipped");
    assert.match(r.stderr, /line 2: nope is not valid JSON .*; skipped/);
    assert.deepEqual(outputsOf(r), [{ p: 1 }, { p: 3 }]);
  });

  it("sends a directory's files as binary events in name order (numbers by value), skipping hidden files", async () => {
    const images = join(dir, "images");
    await mkdir(join(images, "sub"), { recursive: true });
    await writeFile(join(images, "frame-10.bin"), new Uint8Array([10, 10, 10]));
    await writeFile(join(images, "frame-2.bin"), new Uint8Array([2, 2]));
    await writeFile(join(images, "frame-1.bin"), new Uint8Array([1]));
    await writeFile(join(images, ".DS_Store"), "x");
    await writeFile(join(images, "sub", "ignored.bin"), "x");
    const r = await send(["lens", images, "--url", t.url]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(outputsOf(r), [
      { bytes: 1, head: [1] },
      { bytes: 2, head: [2, 2] },
      { bytes: 3, head: [10, 10, 10] },
    ]);
  });

  it("sends a whole file as one binary event with --binary", async () => {
    const path = await file("blob.dat", new Uint8Array([9, 8, 7, 6, 5]));
    const r = await send(["lens", path, "--binary", "--url", t.url]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(outputsOf(r), [{ bytes: 5, head: [9, 8, 7, 6] }]);
    const piped = await send(["lens", "-", "--binary", "--url", t.url], { input: "hello" });
    assert.equal(piped.code, 0, piped.stderr);
    assert.deepEqual(outputsOf(piped), [{ bytes: 5, head: [104, 101, 108, 108] }]);
  });

  it("reports a missing file, an empty directory or a bad option before any stream opens", async () => {
    const before = await streamsOpened();
    const empty = join(dir, "empty");
    await mkdir(empty, { recursive: true });
    const cases: [string[], RegExp][] = [
      [["echo", join(dir, "no-such.ndjson")], /^streamfn: INVALID_REQUEST: cannot read .*no-such\.ndjson: no such file or directory\n$/],
      [["lens", empty], /^streamfn: INVALID_REQUEST: .*empty has no files to send/],
      [["echo", await file("blank.ndjson", "\n\n")], /has no events/],
      [["echo", await file("e.ndjson", "1\n"), "--rate", "fast"], /INVALID_OPTIONS: --rate must be a number above 0, got "fast"/],
      [["echo", await file("e2.ndjson", "1\n"), "--fps", "5"], /INVALID_OPTIONS: --fps, --scale and --ffmpeg are for video input/],
      [["lens", join(dir, "images"), "--http"], /INVALID_REQUEST: a directory's files are binary events, which the HTTP NDJSON route cannot carry/],
    ];
    for (const [args, message] of cases) {
      const r = await send([...args, "--url", t.url]);
      assert.equal(r.code, 1, args.join(" "));
      assert.match(r.stderr, message, args.join(" "));
      assert.equal(r.stdout, "", args.join(" "));
    }
    assert.equal(await streamsOpened(), before, "the server saw no stream");
  });

  it("reports bad lines of a file as written, with their line numbers, and opens no stream", async () => {
    const before = await streamsOpened();
    const path = await file("bad.ndjson", '{"ok":1}\n{"ok":2}\ngarbage\n{"ok":4}\n{"x":}\n');
    const r = await send(["echo", path, "--url", t.url]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, "");
    const lines = r.stderr.split("\n");
    assert.match(lines[0]!, /^streamfn: INVALID_JSON: line 3: garbage is not valid JSON \(.+\)$/);
    assert.doesNotMatch(r.stderr, /\{\\?"data\\?"/, "the line as the user wrote it, not wrapped in an envelope");
    assert.match(lines[1]!, /^ {2}line 5: \{"x":\} is not valid JSON/);
    assert.match(r.stderr, /2 bad lines in .*bad\.ndjson; nothing was sent/);

    const env = await file("env.ndjson", '{"data":1}\n{"data":2,"seq":0}\n{"datum":3}\n');
    const e = await send(["echo", env, "--envelopes", "--url", t.url]);
    assert.equal(e.code, 1);
    assert.match(e.stderr, /^streamfn: INVALID_SEQ: line 2: \{"data":2,"seq":0\} is not an envelope: "seq" must be a positive integer/);
    assert.match(e.stderr, /line 3: \{"datum":3\} is not an envelope: an event needs a "data" field/);
    assert.equal(await streamsOpened(), before, "the server saw no stream");
  });

  it("sends envelopes as they are with --envelopes, up to an end line", async () => {
    const path = await file("envs.ndjson", '{"data":"a","seq":1}\n{"data":"b","seq":2}\n{"data":"b","seq":2}\n{"end":true}\n');
    const r = await send(["echo", path, "--envelopes", "--url", t.url]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(outputsOf(r), ["a", "b"], "the resent seq 2 is a duplicate");
  });

  it("paces events evenly with --rate", async () => {
    const n = 6;
    const rate = 20;
    const path = await file("paced.ndjson", "1\n".repeat(n));
    const r = await send(["arrivals", path, "--rate", String(rate), "--url", t.url]);
    assert.equal(r.code, 0, r.stderr);
    const at = outputsOf(r)[0] as number[];
    assert.equal(at.length, n);
    const span = at[n - 1]! - at[0]!;
    const minSpan = ((n - 1) / rate) * 1000;
    assert.ok(span >= minSpan * 0.75, `${n} events at ${rate}/s arrived over ${span.toFixed(1)} ms, expected at least ~${minSpan} ms`);
    for (let i = 1; i < n; i++) assert.ok(at[i]! - at[i - 1]! >= 10, `gap ${i} is ${(at[i]! - at[i - 1]!).toFixed(1)} ms: events came in a burst`);
  });

  it("reads STREAMFN_URL and STREAMFN_TOKEN; a refusal prints the server's code and message", async () => {
    const secured = await startTestServer({ "echo.ts": echo }, { token: "s3cret" });
    try {
      const path = await file("one.ndjson", '"hi"\n');
      const ok = await send(["echo", path], { env: { STREAMFN_URL: secured.url, STREAMFN_TOKEN: "s3cret" } });
      assert.equal(ok.code, 0, ok.stderr);
      assert.deepEqual(outputsOf(ok), ["hi"]);
      for (const extra of [[], ["--http"]]) {
        const denied = await send(["echo", path, ...extra], { env: { STREAMFN_URL: secured.url } });
        assert.equal(denied.code, 1);
        assert.match(denied.stderr, /^streamfn: UNAUTHORIZED: /, extra.join(" "));
      }
      const flagWins = await send(["echo", path, "--url", t.url], { env: { STREAMFN_URL: "http://127.0.0.1:1" } });
      assert.equal(flagWins.code, 0, flagWins.stderr);
    } finally {
      await secured.close();
    }
    for (const extra of [[], ["--http"]]) {
      const r = await send(["no-such-fn", await file("x.ndjson", "1\n"), "--url", t.url, ...extra]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^streamfn: FUNCTION_NOT_FOUND: .*no-such-fn/, extra.join(" "));
    }
    const down = await send(["echo", await file("y.ndjson", "1\n")], { env: { STREAMFN_URL: "http://127.0.0.1:1" } });
    assert.equal(down.code, 1);
    assert.match(down.stderr, /cannot reach the server at http:\/\/127\.0\.0\.1:1: ECONNREFUSED \(set --url or STREAMFN_URL\)/);
  });

  it("ends the input on Ctrl-C: the function finishes, its outputs print, the exit code is 130", async () => {
    const child = spawn(process.execPath, [kMain, "send", "echo", "--url", t.url], { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const closed = new Promise<number | null>((resolve) => child.once("close", resolve));
    child.stdin.write('"first"\n');
    await eventually(() => stdout.includes('"data":"first"'), 10_000, "the first output");
    child.kill("SIGINT");
    const code = await closed;
    assert.equal(code, 130, stderr);
    assert.match(stderr, /ending the input/);
    const end = stdout.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>).find((r) => r.type === "end");
    assert.deepEqual(end, { type: "end", status: "completed", reason: "end", events: 1, outputs: 1 });
  });

  it("exits when the server ends the stream while stdin is still open", async () => {
    const quick = await startTestServer({ "quick.ts": fnSource(`{ idleTimeoutMs: 200, async *handler(events) { for await (const e of events) yield e; } }`) });
    const child = spawn(process.execPath, [kMain, "send", "quick", "--url", quick.url], { stdio: ["pipe", "pipe", "pipe"] });
    try {
      let stdout = "";
      child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
      const closed = new Promise<number | null>((resolve) => child.once("close", resolve));
      child.stdin.write("1\n");
      assert.equal(await closed, 0, "stdin never ended, the idle stream did");
      assert.match(stdout, /"reason":"idle"/);
    } finally {
      child.kill("SIGKILL");
      await quick.close();
    }
  });

  it("stops at the function's maxEvents, and when the handler returns early, without a flood of refusals", async () => {
    const limited = await startTestServer({
      "three.ts": fnSource(`{ maxEvents: 3, async *handler(events) { for await (const e of events) yield e; } }`),
      "first.ts": fnSource(`{ async handler(events) { for await (const e of events) return e; } }`),
    });
    try {
      const path = await file("many.ndjson", Array.from({ length: 5000 }, (_, i) => `${i}`).join("\n"));
      for (const extra of [[], ["--http"]]) {
        const r = await send(["three", path, "--url", limited.url, ...extra]);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(outputsOf(r), [0, 1, 2]);
        assert.equal(endOf(r)!.reason, "max-events");
        assert.match(r.stderr, /three takes at most 3 events per stream \(its maxEvents\); the rest of the input was not sent/);
        assert.equal(r.records.filter((x) => x.type === "error").length, 0, "nothing sent past the limit");

        const first = await send(["first", path, "--url", limited.url, ...extra]);
        assert.equal(first.code, 0, first.stderr);
        assert.equal(endOf(first)!.reason, "returned");
      }
    } finally {
      await limited.close();
    }
  });

  it("exits 1 when the server refused an event, though the stream went on and completed", async () => {
    const small = await startTestServer({ "echo.ts": echo }, { overrides: { echo: { maxEventBytes: 40 } } });
    try {
      const path = await file("sizes.ndjson", `"short"\n"${"x".repeat(100)}"\n"after"\n`);
      for (const extra of [[], ["--http"]]) {
        const r = await send(["echo", path, "--url", small.url, ...extra]);
        assert.equal(r.code, 1, extra.join(" "));
        assert.deepEqual(outputsOf(r), ["short", "after"]);
        assert.equal(r.records.find((x) => x.type === "error")!.code, "EVENT_TOO_LARGE");
        assert.equal(endOf(r)!.status, "completed");
        assert.match(r.stderr, /the server refused 1 event \(first: EVENT_TOO_LARGE: /);
      }
    } finally {
      await small.close();
    }
  });

  it("exits 1 when the stream fails", async () => {
    const failing = await startTestServer({ "boom.ts": fnSource(`{ async handler(events) { for await (const _ of events) throw new Error("kaput"); } }`) });
    try {
      const r = await send(["boom", await file("z.ndjson", "1\n2\n"), "--url", failing.url]);
      assert.equal(r.code, 1);
      assert.equal(endOf(r)!.status, "failed");
      assert.match(r.stderr, /streamfn: HANDLER_ERROR: the stream failed .*kaput/);
    } finally {
      await failing.close();
    }
  });

  it("shows a progress line on a terminal's stderr and clears it before the end", { skip: !hasScript && "no script(1) to make a terminal" }, async () => {
    const path = await file("tty.ndjson", "1\n2\n3\n4\n5\n6\n");
    const out = join(dir, "tty-out.ndjson");
    const cmd = [process.execPath, kMain, "send", "echo", path, "--rate", "10", "--url", t.url].map((a) => `'${a}'`).join(" ");
    // script(1) runs the command on a pseudo-terminal; stdout goes to a file, so what the
    // terminal shows is stderr alone.
    const tty = spawn("script", ["-qec", `${cmd} > '${out}'`, "/dev/null"], { stdio: ["pipe", "pipe", "pipe"] });
    let screen = "";
    tty.stdout.on("data", (c: Buffer) => (screen += c.toString()));
    tty.stdin.end();
    assert.equal(await new Promise((r) => tty.once("close", r)), 0, screen);
    assert.match(screen, /\[[#-]{24}\] \d\/6 events {2}[\d.]+\/s {2}\d outputs? {2}[\d.]+s/, "a bar with the known total");
    assert.match(screen, /\r\x1b\[Kstreamfn: stream completed \(end\): 6 events sent, 6 outputs in [\d.]+s/, "cleared, then the summary");
    const records = (await readFile(out, "utf8")).trim().split("\n");
    assert.equal(records.length, 8, "stdout has the records and nothing of the bar");
  });

  it("has help that names the environment variables and shows examples", async () => {
    const child = spawn(process.execPath, [kMain, "send", "--help"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    await new Promise((r) => child.once("close", r));
    assert.match(out, /STREAMFN_URL/);
    assert.match(out, /STREAMFN_TOKEN/);
    assert.match(out, /streamfn send echo events\.ndjson/);
    assert.match(out, /\| streamfn send echo/);
    assert.match(out, /streamfn send \S+ \.\/images\//);
    assert.match(out, /clip\.mp4 --rate 30/);
  });

  describe("video", () => {
    let clip: string;
    before(async () => {
      clip = join(dir, "clip.mp4");
      await new Promise<void>((resolve, reject) => {
        const ff = spawn(kFfmpeg, ["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-frames:v", "10", "-pix_fmt", "yuv420p", clip], { stdio: "ignore" });
        ff.once("error", reject);
        ff.once("close", (code) => (code === 0 ? resolve() : reject(new Error(`ffmpeg exited ${code}`))));
      });
    });

    it("sends each frame of a video as one binary JPEG event", async () => {
      const r = await send(["lens", clip, "--url", t.url], { env: { FFMPEG_PATH: undefined } });
      assert.equal(r.code, 0, r.stderr);
      const frames = outputsOf(r) as { bytes: number; head: number[] }[];
      assert.equal(frames.length, 10);
      for (const f of frames) assert.deepEqual(f.head.slice(0, 3), [0xff, 0xd8, 0xff], "a JPEG");
    });

    it("reads a video piped to stdin with --video", async () => {
      const r = await send(["lens", "-", "--video", "--url", t.url], { input: await readFile(clip) });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(outputsOf(r).length, 10);
    });

    it("takes --fps, --scale, --frame-format png, --rate and --ffmpeg", async () => {
      const r = await send(["lens", clip, "--fps", "5", "--scale", "32", "--frame-format", "png", "--rate", "30", "--ffmpeg", kFfmpeg, "--url", t.url]);
      assert.equal(r.code, 0, r.stderr);
      const frames = outputsOf(r) as { bytes: number; head: number[] }[];
      assert.equal(frames.length, 5, "1 s of video at 5 fps");
      for (const f of frames) assert.deepEqual(f.head, [0x89, 0x50, 0x4e, 0x47], "a PNG");
    });

    it("reports what ffmpeg cannot read, or a missing ffmpeg, before any stream opens", async () => {
      const before = await streamsOpened();
      const notVideo = await file("fake.mp4", "not a video\n");
      const r = await send(["lens", notVideo, "--url", t.url]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^streamfn: INVALID_REQUEST: cannot read video .*fake\.mp4: ffmpeg failed/);
      const noFf = await send(["lens", clip, "--ffmpeg", join(dir, "no-ffmpeg"), "--url", t.url]);
      assert.equal(noFf.code, 1);
      assert.match(noFf.stderr, /INVALID_OPTIONS: --ffmpeg .*no-ffmpeg is not an executable file/);
      const http = await send(["lens", clip, "--http", "--url", t.url]);
      assert.match(http.stderr, /video frames are binary events/);
      assert.equal(await streamsOpened(), before, "the server saw no stream");
    });
  });
});

describe("send's parts", () => {
  it("checks lines: bare values are wrapped, envelopes kept, blank lines skipped", () => {
    assert.deepEqual(checkLine('{"a":1}', 1, false), { kind: "event", text: '{"data":{"a":1}}' });
    assert.deepEqual(checkLine('{"data":1,"seq":4}', 1, true), { kind: "event", text: '{"data":1,"seq":4}' });
    assert.deepEqual(checkLine('{"end":true}', 1, true), { kind: "end" });
    assert.equal(checkLine("   ", 1, false), null);
    assert.deepEqual(checkLine("\ufeff[1]", 1, false), { kind: "event", text: '{"data":[1]}' }, "a byte-order mark is dropped");
    assert.throws(() => checkLine("garbage", 3, false), { code: "INVALID_JSON", message: /^line 3: garbage is not valid JSON \(Unexpected token/ });
    assert.throws(() => checkLine("x".repeat(500), 9, false), (err: Error) => err.message.length < 200);
  });

  it("renders the progress line: a bar with a known total, none without or when narrow", () => {
    const known = renderProgress({ sent: 5, total: 10, outputs: 4, elapsedMs: 2000 }, 100);
    assert.equal(known, "[############------------] 5/10 events  2.5/s  4 outputs  2.0s");
    assert.equal(renderProgress({ sent: 3, total: undefined, outputs: 1, elapsedMs: 1000 }, 100), "3 events  3.0/s  1 output  1.0s");
    assert.match(renderProgress({ sent: 3, total: 300, approx: true, outputs: 0, elapsedMs: 0 }, 100), /\] 3\/~300 events {2}0\.0\/s/);
    const narrow = renderProgress({ sent: 5, total: 10, outputs: 4, elapsedMs: 2000 }, 30);
    assert.equal(narrow.length, 29);
    assert.ok(narrow.startsWith("5/10 events"));
  });

  it("cuts back-to-back JPEGs and PNGs into images however the bytes arrive", async () => {
    for (const [format, codec] of [
      ["jpeg", ["-c:v", "mjpeg", "-pix_fmt", "yuvj420p"]],
      ["png", ["-c:v", "png"]],
    ] as const) {
      const out = await new Promise<Buffer>((resolve, reject) => {
        const ff = spawn(kFfmpeg, ["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=32x24:rate=10", "-frames:v", "4", ...codec, "-f", "image2pipe", "-"]);
        const chunks: Buffer[] = [];
        ff.stdout.on("data", (c: Buffer) => chunks.push(c));
        ff.once("error", reject);
        ff.once("close", (code) => (code === 0 ? resolve(Buffer.concat(chunks)) : reject(new Error(`ffmpeg exited ${code}`))));
      });
      for (const step of [1, 7, 4096, out.length]) {
        const splitter = new FrameSplitter(format);
        const frames: Uint8Array[] = [];
        for (let o = 0; o < out.length; o += step) frames.push(...splitter.push(out.subarray(o, o + step)));
        assert.equal(frames.length, 4, `${format} in ${step}-byte pieces`);
        assert.equal(splitter.pending, 0);
        assert.equal(frames.reduce((n, f) => n + f.byteLength, 0), out.length);
      }
    }
  });
});
