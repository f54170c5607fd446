// `streamfn logs` as a real process against a real server.
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { fnSource, freePort } from "./helpers/contract-util.js";
import { eventually, startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";

const kMain = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const kRepo = fileURLToPath(new URL("../../", import.meta.url));
const token = "cli-logs-token";

const talk = fnSource(`{
  idleTimeoutMs: 60000,
  async *handler(events, ctx) {
    for await (const e of events) {
      ctx.log[e.level ?? "info"](e.log);
      yield e;
    }
  },
}`);

interface Run {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

function cli(args: string[]): Run {
  const child = spawn(process.execPath, [kMain, ...args], { cwd: kRepo, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NO_COLOR: "1", STREAMFN_TOKEN: "" } });
  let out = "";
  let err = "";
  child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr!.on("data", (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exited };
}

describe("streamfn logs (a real process)", () => {
  let t: TestServer;
  const running = new Set<ChildProcess>();
  const run = (args: string[]): Run => {
    const r = cli([...args, "--url", t.url, "--token", token]);
    running.add(r.child);
    void r.exited.then(() => running.delete(r.child));
    return r;
  };
  before(async () => {
    t = await startTestServer({ "talk.ts": talk }, { token });
  });
  after(async () => {
    for (const c of running) c.kill("SIGKILL");
    await t.close();
  });

  async function stream(id: string, lines: { log: string; level?: string }[], end = true): Promise<StreamClient> {
    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/talk/streams/${id}`, { authorization: `Bearer ${token}` });
    for (const l of lines) c.event(l);
    await c.waitFor((r) => r.type === "output" && (r.n as number) === lines.length);
    if (end) {
      c.end();
      await c.waitEnd();
    }
    return c;
  }

  it("prints a stream's kept lines as `time level [fn/stream] msg`", async () => {
    await stream("r1", [{ log: "first" }, { log: "second", level: "warn" }]);
    const r = run(["logs", "talk", "r1"]);
    assert.equal(await r.exited, 0, r.stderr());
    const lines = r.stdout().trimEnd().split("\n");
    assert.equal(lines.length, 2, r.stdout());
    assert.match(lines[0]!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info  \[talk\/r1\] first$/);
    assert.match(lines[1]!, /^\S+ warn  \[talk\/r1\] second$/);

    const j = run(["logs", "talk", "r1", "--json"]);
    assert.equal(await j.exited, 0, j.stderr());
    const body = JSON.parse(j.stdout()) as { lines: { msg: string }[]; dropped: number };
    assert.deepEqual(body.lines.map((l) => l.msg), ["first", "second"]);
    assert.equal(body.dropped, 0);
  });

  it("follows one stream until it ends", async () => {
    const c = await stream("r2", [{ log: "kept" }], false);
    const r = run(["logs", "talk", "r2", "-f"]);
    await eventually(() => r.stdout().includes("kept"), 10_000, "the kept line");
    c.event({ log: "while following" });
    await eventually(() => r.stdout().includes("[talk/r2] while following"), 10_000, "the new line");
    c.end();
    await c.waitEnd();
    assert.equal(await r.exited, 0, r.stderr());
    assert.match(r.stderr(), /the stream completed \(end\)/);
  });

  it("follows every stream of a function with -f and no stream id", async () => {
    const r = run(["logs", "talk", "-f"]);
    // It prints nothing until it is connected; keep logging new streams until one shows up.
    let n = 0;
    await eventually(async () => {
      await stream(`tick-${++n}`, [{ log: `tick ${n}` }]);
      return /\[talk\/tick-\d+\] tick \d+/.test(r.stdout());
    }, 20_000, "a line logged while following");
    assert.match(r.stdout(), /^\S+ info  \[talk\/tick-(\d+)\] tick \1$/m);
    assert.equal(r.child.exitCode, null, "a function follow goes on after its streams end");
    r.child.kill("SIGTERM");
    await r.exited;
  });

  it("fails with the server's code: an unknown stream, a missing token, no stream id without -f", async () => {
    const missing = run(["logs", "talk", "nobody"]);
    assert.equal(await missing.exited, 1);
    assert.match(missing.stderr(), /^streamfn: STREAM_NOT_FOUND: /);

    const noToken = cli(["logs", "talk", "r1", "--url", t.url]);
    assert.equal(await noToken.exited, 1);
    assert.match(noToken.stderr(), /^streamfn: UNAUTHORIZED: /);

    const bare = run(["logs", "talk"]);
    assert.equal(await bare.exited, 1);
    assert.match(bare.stderr(), /^streamfn: INVALID_REQUEST: give a stream id, or --follow/);
  });

  it("shows its options, the target help and an example in --help", async () => {
    const r = cli(["logs", "--help"]);
    assert.equal(await r.exited, 0);
    assert.match(r.stdout(), /--follow/);
    assert.match(r.stdout(), /STREAMFN_URL/);
    assert.match(r.stdout(), /\$ streamfn logs echo -f/);
  });
});

describe("streamfn logs -f when the server stops", () => {
  it("exits 1 with SHUTTING_DOWN", async () => {
    const t = await startTestServer({ "talk.ts": talk });
    let r: Run | undefined;
    try {
      r = cli(["logs", "talk", "-f", "--url", t.url]);
      await eventually(() => t.server.logFollowers.count === 1, 10_000, "the follower");
    } finally {
      await t.close();
    }
    assert.equal(await r.exited, 1, r.stderr());
    assert.match(r.stderr(), /^streamfn: SHUTTING_DOWN: the server is shutting down/m);
  });
});

describe("streamfn serve's log (a real process)", () => {
  it("prints its start-up line for a person first, then the server's records as JSON lines", async () => {
    const port = await freePort();
    const r = cli(["serve", "examples/functions", "--port", String(port), "--no-watch"]);
    try {
      await eventually(() => r.stdout().includes('"msg":"listening"'), 20_000, "the listening record");
      const lines = r.stdout().trimEnd().split("\n");
      assert.match(lines[0]!, /^streamfn listening on http:\/\/127\.0\.0\.1:/);
      const records = lines.slice(1).map((l) => JSON.parse(l) as { msg: string; fn?: string; url?: string });
      assert.ok(records.some((x) => x.msg === "deployed" && x.fn === "echo"), r.stdout());
      assert.equal(records.find((x) => x.msg === "listening")!.url, `http://127.0.0.1:${port}`);
    } finally {
      r.child.kill("SIGTERM");
      await r.exited;
    }
  });
});
