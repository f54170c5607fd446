// `streamfn dev`: the real binary as a child process, its stdout read line by line (no TTY, so plain).
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { closestName, unknownFunctionWarnings } from "../src/cli/config.js";
import { wantsColor } from "../src/cli/dev/style.js";
import { eventually } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";

const kMain = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const kRepo = fileURLToPath(new URL("../../", import.meta.url));
const kApiTypes = fileURLToPath(new URL("../src/api/index.d.ts", import.meta.url));
const kWaitMs = 20_000;

interface Dev {
  child: ChildProcess;
  dir: string;
  url: string;
  lines: string[];
  /** Waits for a line (after the first `from` lines) matching `re`; returns it. */
  line(re: RegExp, from?: number): Promise<string>;
  stop(): Promise<void>;
}

async function startDev(files: Record<string, string>, args: string[] = [], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<Dev> {
  const dir = await mkdtemp(join(tmpdir(), "streamfn-dev-"));
  for (const [file, source] of Object.entries(files)) {
    await mkdir(dirname(join(dir, file)), { recursive: true });
    await writeFile(join(dir, file), source);
  }
  const env: Record<string, string | undefined> = { ...process.env, ...opts.env };
  if (!opts.env?.FORCE_COLOR) delete env.FORCE_COLOR;
  delete env.NO_COLOR;
  const child = spawn(process.execPath, [kMain, "dev", dir, "--port", "0", ...args], {
    cwd: opts.cwd ?? kRepo,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  createInterface({ input: child.stdout! }).on("line", (l) => lines.push(l));
  createInterface({ input: child.stderr! }).on("line", (l) => lines.push(`stderr: ${l}`));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const line = async (re: RegExp, from = 0): Promise<string> =>
    (await eventually(() => lines.slice(from).find((l) => re.test(l)), kWaitMs, `a line matching ${re}; got:\n${lines.join("\n")}`))!;
  const dev: Dev = {
    child,
    dir,
    url: "",
    lines,
    line,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    dev.url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(await line(/listening on/))![1]!;
  } catch (err) {
    await dev.stop();
    throw err;
  }
  return dev;
}

const echo = `import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  async *handler(events) {
    for await (const e of events) yield { v: 1, e };
  },
});
`;

const motion = `import { defineStreamFunction } from "streamfn";
import { score } from "./lib/score.js";
import { label } from "./util.js";
export default defineStreamFunction({
  async *handler(events) {
    for await (const e of events) yield { score: score(e as number), label: label() };
  },
});
`;

// Line 3, column 9: `count` is declared a number but given a string.
const badTypes = `import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  async *handler(events) { const count: number = "many"; for await (const _ of events) yield count; },
});
`;

async function stream(dev: Dev, fn: string, id: string, events: unknown[]): Promise<{ version: string; outputs: unknown[]; end: Record<string, unknown> }> {
  const c = await StreamClient.connect(`${dev.url.replace(/^http/, "ws")}/v1/functions/${fn}/streams/${id}`);
  try {
    const open = await c.waitFor((r) => r.type === "open");
    for (const e of events) c.event(e);
    c.end();
    const end = await c.waitEnd(kWaitMs);
    return { version: String(open.version), outputs: c.outputs(), end };
  } finally {
    c.close();
  }
}

describe("streamfn dev", () => {
  let dev: Dev;
  before(async () => {
    dev = await startDev(
      {
        "echo.ts": echo,
        "motion.ts": motion,
        "util.ts": `export function label(): string { return "a"; }\n`,
        "lib/score.ts": `export function score(x: number): number { return x * 2; }\n`,
        "bad.ts": badTypes,
        "boom.ts": `import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  async *handler(events) { for await (const _ of events) throw new Error("kaboom"); },
});
`,
      },
      ["--set", "ecoh.idleTimeoutMs=1"],
    );
  });
  after(() => dev.stop());

  it("prints a stream's open, its outputs and its end", async () => {
    const from = dev.lines.length;
    const got = await stream(dev, "echo", "s1", ["a", { b: 2 }]);
    assert.deepEqual(got.outputs, [
      { v: 1, e: "a" },
      { v: 1, e: { b: 2 } },
    ]);
    assert.match(await dev.line(/^echo s1 open /, from), new RegExp(`^echo s1 open @${got.version} \\((cold start \\d+ ms|warm.*)\\)$`));
    await dev.line(/^echo s1 out #1 \{"v":1,"e":"a"\}$/, from);
    await dev.line(/^echo s1 out #2 \{"v":1,"e":\{"b":2\}\}$/, from);
    await dev.line(/^echo s1 end completed \(end\): 2 events, 2 outputs, \d+ ms$/, from);
    const mine = dev.lines.slice(from).filter((l) => l.startsWith("echo s1 "));
    assert.deepEqual(mine.map((l) => l.split(" ")[2]), ["open", "out", "out", "end"]);
  });

  it("prints a failed stream's error code and message", async () => {
    const from = dev.lines.length;
    // bad.ts serves although its types are wrong; a stream opened and ended at once completes.
    await stream(dev, "bad", "b1", []);
    await dev.line(/^bad b1 end completed \(end\): 0 events, 0 outputs, \d+ ms$/, from);
    const failed = await stream(dev, "boom", "f1", ["x"]);
    assert.equal(failed.end.status, "failed");
    await dev.line(/^boom f1 end failed \(error\): 1 event, 0 outputs, \d+ ms HANDLER_ERROR: .*kaboom/, from);
  });

  it("does not report a helper file beside the functions as failed", async () => {
    assert.ok(!dev.lines.some((l) => l.includes("util.ts") || /FUNCTION_LOAD_FAILED|INVALID_FUNCTION/.test(l)), dev.lines.join("\n"));
    assert.match(dev.lines.find((l) => l.startsWith("streamfn listening"))!, /\(4 functions: bad, boom, echo, motion;/);
  });

  it("prints type errors with file:line:col while the function still serves", async () => {
    const line = await dev.line(/bad\.ts:\d+:\d+ error TS\d+: /);
    assert.equal(line, `${join(dev.dir, "bad.ts")}:3:34 error TS2322: Type 'string' is not assignable to type 'number'.`);
    await dev.line(/^streamfn: types: 1 type error \(the functions still serve, strict defaults\)$/);
    assert.ok(!dev.lines.some((l) => /(echo|motion|util|score)\.ts:\d+:\d+ error/.test(l)), dev.lines.join("\n"));
    const got = await stream(dev, "bad", "b2", ["x"]);
    assert.deepEqual(got.outputs, ["many"]);
  });

  it("warns at start about a function name that matches no served function", async () => {
    assert.ok(
      dev.lines.includes(
        'streamfn: warning: --set ecoh.idleTimeoutMs=1 names "ecoh", which is not a served function (did you mean "echo"?); a function that appears later under that name will still take it',
      ),
      dev.lines.join("\n"),
    );
  });

  it("redeploys a function when a file it imports changes; the new version serves the new behaviour", async () => {
    const before = await stream(dev, "motion", "m1", [3]);
    assert.deepEqual(before.outputs, [{ score: 6, label: "a" }]);
    const from = dev.lines.length;
    await writeFile(join(dev.dir, "lib", "score.ts"), `export function score(x: number): number { return x * 100; }\n`);
    const deployed = await dev.line(/^streamfn: deployed motion@/, from);
    assert.match(deployed, new RegExp(`^streamfn: deployed motion@[0-9a-f]{12} \\(replaces ${before.version}\\)$`));
    const after = await stream(dev, "motion", "m2", [3]);
    assert.notEqual(after.version, before.version);
    assert.deepEqual(after.outputs, [{ score: 300, label: "a" }]);
    // The change is type-checked again.
    await dev.line(/^streamfn: types: /, from);

    // A type error in the changed file is printed, and the function keeps serving it.
    const from2 = dev.lines.length;
    await writeFile(join(dev.dir, "lib", "score.ts"), `export function score(x: number): number { return x * 7; }\nexport const oops: string = 1;\n`);
    assert.match(await dev.line(/score\.ts:\d+:\d+ error/, from2), /lib\/score\.ts:2:14 error TS2322: /);
    await dev.line(/^streamfn: deployed motion@/, from2);
    assert.deepEqual((await stream(dev, "motion", "m4", [1])).outputs, [{ score: 7, label: "a" }]);
  });
});

describe("streamfn dev limits and settings", () => {
  it("prints only the first outputs of a stream that floods, and says so at its end", async () => {
    const flood = `import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  async *handler(events) { for await (const _ of events) for (let i = 0; i < 5000; i++) yield i; },
});
`;
    // The project's own tsconfig.json is used (not strict: the implicit any below is allowed), with its own streamfn mapping.
    const loose = `import { defineStreamFunction } from "streamfn";
function twice(x) { return x * 2; }
export default defineStreamFunction({ async *handler(events) { for await (const e of events) yield twice(e as number); } });
`;
    const tsconfig = JSON.stringify({
      compilerOptions: { strict: false, module: "ESNext", moduleResolution: "Bundler", target: "ES2022", skipLibCheck: true, paths: { streamfn: [kApiTypes] } },
    });
    const dev = await startDev({ "flood.ts": flood, "loose.ts": loose, "tsconfig.json": tsconfig }, ["--outputs", "3"]);
    try {
      const got = await stream(dev, "flood", "f", ["go"]);
      assert.equal(got.outputs.length, 5000);
      const end = await dev.line(/^flood f end /);
      assert.match(end, /^flood f end completed \(end\): 1 event, 5000 outputs, \d+ ms \(3 of them printed\)$/);
      assert.deepEqual(
        dev.lines.filter((l) => l.startsWith("flood f out ")),
        ["flood f out #1 0", "flood f out #2 1", "flood f out #3 2"],
      );
      assert.equal(await dev.line(/^streamfn: types: /), `streamfn: types: no type errors (${join(dev.dir, "tsconfig.json")})`);
    } finally {
      await dev.stop();
    }
  });

  it("warns about a config file's function name that matches no served function", async () => {
    const dir = await mkdtemp(join(tmpdir(), "streamfn-dev-cfg-"));
    const cfg = join(dir, "streamfn.json");
    await writeFile(cfg, JSON.stringify({ functions: { ehco: { idleTimeoutMs: 1000 } } }));
    const dev = await startDev({ "echo.ts": echo }, ["--config", cfg, "--no-typecheck"]);
    try {
      assert.ok(
        dev.lines.includes(
          `streamfn: warning: config ${cfg}: functions.ehco names "ehco", which is not a served function (did you mean "echo"?); a function that appears later under that name will still take it`,
        ),
        dev.lines.join("\n"),
      );
      assert.ok(!dev.lines.some((l) => l.startsWith("streamfn: types")));
    } finally {
      await dev.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("caps the stream lines printed per second over all streams", async () => {
    const flood = `import { defineStreamFunction } from "streamfn";
export default defineStreamFunction({
  async *handler(events) { for await (const _ of events) for (let i = 0; i < 20000; i++) yield i; },
});
`;
    const dev = await startDev({ "flood.ts": flood }, ["--outputs", "999", "--no-typecheck"]);
    try {
      const got = await stream(dev, "flood", "f", ["go"]);
      assert.equal(got.outputs.length, 20000);
      const end = await dev.line(/^flood f end completed \(end\): 1 event, 20000 outputs, \d+ ms \((\d+) of them printed\)$/);
      const printed = Number(/\((\d+) of them printed\)/.exec(end)![1]);
      // 999 outputs would be printed without the cap; 200 a second are (the flood takes well under 5 s).
      await dev.line(/^streamfn: … \d+ stream lines not printed in the last second \(more than 200\/s\)$/);
      assert.equal(dev.lines.filter((l) => l.startsWith("flood f out ")).length, printed);
      assert.ok(printed < 999, end);
    } finally {
      await dev.stop();
    }
  });

  it("says once how to install typescript when the project has none, and colours on FORCE_COLOR", async () => {
    const cwd = await mkdtemp(join(tmpdir(), "streamfn-dev-cwd-"));
    try {
      const dev = await startDev({ "echo.ts": echo }, [], { cwd, env: { FORCE_COLOR: "1" } });
      try {
        const line = await dev.line(/type checking is off/);
        assert.match(line, /^\u001b\[33mstreamfn: type checking is off: typescript is not installed in .*npm install --save-dev typescript/);
        const from = dev.lines.length;
        await writeFile(join(dev.dir, "echo.ts"), echo.replace("v: 1", "v: 2"));
        await dev.line(/deployed echo@/, from);
        assert.equal(dev.lines.filter((l) => l.includes("type checking is off")).length, 1);
      } finally {
        await dev.stop();
      }
    } finally {
      await rm(cwd, { recursive: true, force: true });
    }
  });
});

describe("colour and name suggestions", () => {
  it("colours a terminal unless NO_COLOR, or anything when FORCE_COLOR", () => {
    assert.equal(wantsColor({ isTTY: true }, {}), true);
    assert.equal(wantsColor({ isTTY: false }, {}), false);
    assert.equal(wantsColor({ isTTY: true }, { NO_COLOR: "1" }), false);
    assert.equal(wantsColor({ isTTY: false }, { FORCE_COLOR: "1" }), true);
    assert.equal(wantsColor({ isTTY: true }, { FORCE_COLOR: "0" }), true);
    assert.equal(wantsColor({ isTTY: false }, { FORCE_COLOR: "1", NO_COLOR: "1" }), false);
  });

  it("suggests the closest served name only when one is near", () => {
    assert.equal(closestName("ecoh", ["echo", "motion"]), "echo");
    assert.equal(closestName("motoin", ["echo", "motion"]), "motion");
    assert.equal(closestName("billing", ["echo", "motion"]), undefined);
    assert.deepEqual(unknownFunctionWarnings([{ name: "echo", where: "--set echo.x=1" }], ["echo"]), []);
    assert.deepEqual(unknownFunctionWarnings([{ name: "zzz", where: "config c.json: functions.zzz" }], ["echo"]), [
      'streamfn: warning: config c.json: functions.zzz names "zzz", which is not a served function; a function that appears later under that name will still take it',
    ]);
  });
});
