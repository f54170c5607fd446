// The control commands as real `streamfn` processes against a real server.
import { strict as assert } from "node:assert";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { fnSource } from "./helpers/contract-util.js";
import { startTestServer } from "./helpers/server.js";
import type { TestServer } from "./helpers/server.js";
import { StreamClient } from "./helpers/ws-client.js";

const kBin = fileURLToPath(new URL("../../bin/streamfn.js", import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `streamfn <args>` to its end; never rejects, so a test can look at a failing run. */
function streamfn(args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  return new Promise((resolve) => {
    const childEnv: NodeJS.ProcessEnv = { ...process.env, STREAMFN_URL: undefined, STREAMFN_TOKEN: undefined, ...env };
    for (const [k, v] of Object.entries(childEnv)) if (v === undefined) delete childEnv[k];
    execFile(process.execPath, [kBin, ...args], { env: childEnv, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const tagged = (tag: string): string =>
  fnSource(`{
    idleTimeoutMs: 60000,
    async *handler(events) {
      for await (const e of events) yield { tag: ${JSON.stringify(tag)}, e };
    },
  }`);

describe("streamfn deploy / ls / streams / cancel / rm / status (real processes)", () => {
  let t: TestServer;
  let src: string;
  before(async () => {
    t = await startTestServer({});
    src = await mkdtemp(join(tmpdir(), "streamfn-deploy-src-"));
    await writeFile(join(src, "alpha.ts"), tagged("alpha-1"));
    await writeFile(join(src, "beta.mjs"), tagged("beta-1"));
    // Not function files: skipped, by the same rule the server's directory uses.
    await writeFile(join(src, "alpha.test.ts"), "throw new Error('not deployed');");
    await writeFile(join(src, "types.d.ts"), "export type X = 1;");
    await writeFile(join(src, "README.md"), "# notes");
  });
  after(async () => {
    await t.close();
    await rm(src, { recursive: true, force: true });
  });

  it("deploys every function file of a directory, then ls --json lists them as uploaded", async () => {
    const run = await streamfn(["deploy", src, "--to", t.url]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^FUNCTION\s+VERSION\s+RESULT$/m);
    assert.match(run.stdout, /^alpha\s+[0-9a-f]{12}\s+new function$/m);
    assert.match(run.stdout, /^beta\s+[0-9a-f]{12}\s+new function$/m);
    assert.match(run.stdout, /2 of 2 deployed to http:\/\/127\.0\.0\.1:\d+/);

    const ls = await streamfn(["ls", "--json", "--url", t.url]);
    assert.equal(ls.code, 0, ls.stderr);
    const fns = JSON.parse(ls.stdout) as { name: string; version: string; source: string }[];
    assert.deepEqual(fns.map((f) => [f.name, f.source]).sort(), [
      ["alpha", "uploaded"],
      ["beta", "uploaded"],
    ]);
    const human = await streamfn(["ls"], { STREAMFN_URL: t.url });
    assert.match(human.stdout, /^FUNCTION\s+VERSION\s+RETIRING\s+SOURCE\s+INSTANCES\s+LIVE\s+QUEUED/m);
    assert.match(human.stdout, new RegExp(`^alpha\\s+${fns.find((f) => f.name === "alpha")!.version}\\s+-\\s+uploaded`, "m"));

    const c = await StreamClient.connect(`${t.wsUrl}/v1/functions/alpha/streams`);
    c.event("hi");
    assert.deepEqual((await c.waitFor((r) => r.type === "output")).data, { tag: "alpha-1", e: "hi" });
    c.end();
    await c.waitEnd();
  });

  it("says which deploys replaced a version and which changed nothing (--json too)", async () => {
    await writeFile(join(src, "alpha.ts"), tagged("alpha-2"));
    const before = JSON.parse((await streamfn(["ls", "--json", "--url", t.url])).stdout) as { name: string; version: string }[];
    const oldAlpha = before.find((f) => f.name === "alpha")!.version;
    const run = await streamfn(["deploy", src, "--url", t.url, "--json"]);
    assert.equal(run.code, 0, run.stderr);
    const out = JSON.parse(run.stdout) as { name: string; version: string; previous: string | null; unchanged: boolean }[];
    const alpha = out.find((o) => o.name === "alpha")!;
    const beta = out.find((o) => o.name === "beta")!;
    assert.equal(alpha.previous, oldAlpha);
    assert.notEqual(alpha.version, oldAlpha);
    assert.equal(alpha.unchanged, false);
    assert.equal(beta.unchanged, true);

    const single = await streamfn(["deploy", join(src, "alpha.ts"), "--name", "gamma", "--to", t.url]);
    assert.equal(single.code, 0, single.stderr);
    assert.match(single.stdout, /^gamma\s+[0-9a-f]{12}\s+new function$/m);
  });

  it("reports a file that does not bundle or does not load, deploys the others, and exits 1", async () => {
    const dir = await mkdtemp(join(tmpdir(), "streamfn-deploy-bad-"));
    try {
      await writeFile(join(dir, "good.ts"), tagged("good"));
      await writeFile(join(dir, "syntax.ts"), "export default defineStreamFunction({");
      await writeFile(join(dir, "throws.ts"), `throw new Error("broken at load"); export default 1;`);
      const run = await streamfn(["deploy", dir, "--to", t.url]);
      assert.equal(run.code, 1);
      assert.match(run.stdout, /^good\s+[0-9a-f]{12}\s+new function$/m);
      assert.match(run.stdout, /^syntax\s+-\s+failed: FUNCTION_LOAD_FAILED$/m);
      assert.match(run.stdout, /^throws\s+-\s+failed: DEPLOY_FAILED$/m);
      assert.match(run.stderr, /^streamfn: FUNCTION_LOAD_FAILED: syntax: bundling .*syntax\.ts failed: /m);
      assert.match(run.stderr, /^streamfn: DEPLOY_FAILED: .*broken at load.*throws is not served$/m);
      assert.match(run.stdout, /1 of 3 deployed/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const missing = await streamfn(["deploy", join(src, "nope.ts"), "--to", t.url]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^streamfn: INVALID_REQUEST: cannot read .*nope\.ts: ENOENT/m);
    const unnamed = await streamfn(["deploy", join(src, "README.md"), "--to", t.url]);
    assert.match(unnamed.stderr, /README\.md is not a function file name .*give --name/);
    const badName = await streamfn(["deploy", join(src, "alpha.ts"), "--name", "bad.name", "--to", t.url]);
    assert.equal(badName.code, 1);
    assert.match(badName.stderr, /^streamfn: INVALID_REQUEST: function name "bad\.name" is not allowed/m);
    const nameForDir = await streamfn(["deploy", src, "--name", "x", "--to", t.url]);
    assert.match(nameForDir.stderr, /--name names a single file's function/);
    const nowhere = await streamfn(["deploy", src, "--to", "http://127.0.0.1:1"]);
    assert.equal(nowhere.code, 1);
    assert.match(nowhere.stderr, /^streamfn: INTERNAL: cannot reach the server at http:\/\/127\.0\.0\.1:1/m);
  });

  it("lists a function's streams, cancels a live one (its producer sees STREAM_CANCELLED), then rm retires the function", async () => {
    const live = await StreamClient.connect(`${t.wsUrl}/v1/functions/beta/streams/held`);
    live.event(1);
    await live.waitFor((r) => r.type === "output");
    const done = await StreamClient.connect(`${t.wsUrl}/v1/functions/beta/streams/done`);
    done.event(2);
    done.end();
    await done.waitEnd();

    const table = await streamfn(["streams", "beta", "--url", t.url]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^STREAM\s+STATE\s+VERSION\s+OPENED\s+DURATION\s+EVENTS\s+OUTPUTS\s+END \/ ERROR$/m);
    assert.match(table.stdout, /^held\s+running\s+[0-9a-f]{12}\s+(just now|[\d.]+ (ms|s|min) ago)\s+.+ so far\s+1\s+1\s*$/m);
    assert.match(table.stdout, /^done\s+completed\s+[0-9a-f]{12}\s+.+\s+1\s+1\s+end$/m);
    assert.match(table.stdout, /1 live, 1 recently ended/);

    const liveOnly = await streamfn(["streams", "beta", "--state", "live", "--json", "--url", t.url]);
    const page = JSON.parse(liveOnly.stdout) as { streams: { id: string }[]; next: string | null };
    assert.deepEqual(page.streams.map((s) => s.id), ["held"]);
    const paged = await streamfn(["streams", "beta", "--limit", "1", "--url", t.url]);
    assert.match(paged.stdout, /more: streamfn streams beta --cursor \S+/);

    const cancel = await streamfn(["cancel", "beta", "held", "--reason", "testing", "--url", t.url]);
    assert.equal(cancel.code, 0, cancel.stderr);
    assert.match(cancel.stdout, /^cancelled stream held of beta@[0-9a-f]{12} after 1 events and 1 outputs \(STREAM_CANCELLED: cancelled by an operator: testing\)$/m);
    const end = await live.waitEnd();
    assert.equal(end.status, "failed");
    assert.deepEqual(end.error, { code: "STREAM_CANCELLED", message: "cancelled by an operator: testing" });
    const again = await streamfn(["cancel", "beta", "held", "--url", t.url]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^streamfn: STREAM_ENDED: /m);
    const failed = await streamfn(["streams", "beta", "--state", "failed", "--url", t.url]);
    assert.match(failed.stdout, /^held\s+failed\s+.*STREAM_CANCELLED: cancelled by an operator: testing$/m);

    const removed = await streamfn(["rm", "beta", "--url", t.url]);
    assert.equal(removed.code, 0, removed.stderr);
    assert.match(removed.stdout, /^retired beta@[0-9a-f]{12}: no new streams, running ones finish on it; its uploaded copy is deleted$/m);
    const ls = JSON.parse((await streamfn(["ls", "--json", "--url", t.url])).stdout) as { name: string; version: string | null }[];
    assert.equal(ls.find((f) => f.name === "beta")?.version ?? null, null);
    const unknown = await streamfn(["rm", "beta", "--url", t.url]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /^streamfn: FUNCTION_NOT_FOUND: no function named "beta"$/m);
  });

  it("status summarizes the server for a person, and --json gives the whole status", async () => {
    const run = await streamfn(["status", "--url", t.url]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^server\s+http:\/\/127\.0\.0\.1:\d+ \(pid \d+, node v\d+/m);
    assert.match(run.stdout, /^uptime\s+[\d.]+ (ms|s|min|h)/m);
    assert.match(run.stdout, /^functions\s+\d+ \(.*alpha.*\)$/m);
    assert.match(run.stdout, /^streams\s+\d+ live, \d+ waiting for a slot$/m);
    assert.match(run.stdout, /^memory\s+[\d.]+ MiB resident, [\d.]+ MiB heap$/m);
    const json = JSON.parse((await streamfn(["status", "--json", "--url", t.url])).stdout) as { process: { pid: number } };
    assert.equal(json.process.pid, process.pid);
  });
});

describe("control commands against a server with a token", () => {
  let t: TestServer;
  let dir: string;
  before(async () => {
    t = await startTestServer({}, { token: "s3cret" });
    dir = await mkdtemp(join(tmpdir(), "streamfn-deploy-token-"));
    await mkdir(join(dir, "fns"));
    await writeFile(join(dir, "fns", "secured.ts"), tagged("s"));
  });
  after(async () => {
    await t.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("refuses without the token (UNAUTHORIZED) and works with --token or STREAMFN_TOKEN", async () => {
    const without = await streamfn(["deploy", join(dir, "fns"), "--to", t.url]);
    assert.equal(without.code, 1);
    assert.match(without.stderr, /^streamfn: UNAUTHORIZED: /m);
    const withFlag = await streamfn(["deploy", join(dir, "fns"), "--to", t.url, "--token", "s3cret"]);
    assert.equal(withFlag.code, 0, withFlag.stderr);
    const ls = await streamfn(["ls", "--json"], { STREAMFN_URL: t.url, STREAMFN_TOKEN: "s3cret" });
    assert.deepEqual((JSON.parse(ls.stdout) as { name: string }[]).map((f) => f.name), ["secured"]);
  });
});
