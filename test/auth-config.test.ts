// Auth files are checked strictly at start, and a server without tokens stays on loopback:
// both through the real `streamfn` binary as well as the functions behind it.
import { strict as assert } from "node:assert";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { combineAuth, loadAuth, parseAuth } from "../src/auth/auth-config.js";
import { fnSource } from "./helpers/contract-util.js";
import { Background } from "./helpers/processes.js";

const kBin = fileURLToPath(new URL("../../bin/streamfn.js", import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function streamfn(args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  return new Promise((resolve) => {
    const childEnv: NodeJS.ProcessEnv = { ...process.env, STREAMFN_TOKEN: undefined, STREAMFN_AUTH: undefined, HOST: undefined, PORT: undefined, ...env };
    for (const [k, v] of Object.entries(childEnv)) if (v === undefined) delete childEnv[k];
    execFile(process.execPath, [kBin, ...args], { env: childEnv, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

function envWithout(...names: string[]): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const n of names) delete env[n];
  return env;
}

const good = { name: "ops", token: "ops-secret-123456", roles: ["admin"] };
const invalid = (tokens: unknown[], extra: Record<string, unknown> = {}): (() => unknown) => () => parseAuth({ tokens, ...extra }, "auth file a.json");

describe("auth file validation", () => {
  it("refuses each kind of bad entry, naming the file and the entry", () => {
    const cases: [() => unknown, RegExp][] = [
      [invalid([{ ...good, roles: ["admin", "superuser"] }]), /^auth file a\.json: tokens\[0\] \("ops"\): unknown role "superuser" \(roles: produce, read, admin\)$/],
      [invalid([good, { ...good, name: "ops2" }]), /^auth file a\.json: tokens\[1\] \("ops2"\): duplicate token \(the same secret as tokens\[0\]\)$/],
      // The same secret, once in the clear and once as its digest, is still one secret.
      [invalid([good, { ...good, name: "ops2", token: "sha256:" + createHash("sha256").update(good.token).digest("hex") }]), /tokens\[1\] \("ops2"\): duplicate token/],
      [invalid([{ ...good, token: "" }]), /tokens\[0\] \("ops"\): "token" must be a non-empty string/],
      [invalid([{ ...good, token: "   " }]), /tokens\[0\] \("ops"\): "token" must be a non-empty string/],
      [invalid([{ ...good, token: "sha256:abc" }]), /tokens\[0\] \("ops"\): "token" starts with sha256: but is not sha256: followed by 64/],
      [invalid([good, { ...good, token: "other-secret-xyz" }]), /tokens\[1\] \("ops"\): duplicate name "ops" \(also tokens\[0\]\)/],
      [invalid([{ ...good, roles: [] }]), /tokens\[0\] \("ops"\): "roles" must be a non-empty array/],
      [invalid([{ ...good, role: "admin" }]), /tokens\[0\] \("ops"\): unknown key "role"/],
      [invalid([{ ...good, functions: ["echo"] }]), /tokens\[0\] \("ops"\): "functions" narrows the produce role, and this token is admin/],
      [invalid([{ ...good, roles: ["produce"], functions: [] }]), /"functions" must be a non-empty array of function names/],
      [invalid([{ ...good, limits: { eventsPerSecond: 5 } }]), /tokens\[0\] \("ops"\)\.limits: unknown limit "eventsPerSecond" \(known: streamsPerS, eventsPerS, bytesPerS, concurrentStreams\)/],
      [invalid([{ ...good, limits: { eventsPerS: -1 } }]), /eventsPerS must be an integer >= 0/],
      [invalid([]), /"tokens" is empty/],
      [invalid([good], { limits: { perAddress: {} } }), /limits: unknown key "perAddress"/],
      [invalid([good], { extra: 1 }), /^auth file a\.json: unknown key "extra"/],
      [invalid(["ops-secret"]), /tokens\[0\] must be an object/],
    ];
    for (const [run, message] of cases) {
      assert.throws(run, (err: Error & { code?: string }) => {
        assert.equal(err.code, "INVALID_OPTIONS");
        assert.match(err.message, message);
        assert.ok(!err.message.includes(good.token), "the token is not in the message");
        return true;
      });
    }
  });

  it("takes sha256 digests, and refuses the legacy token when it repeats a file's secret", () => {
    const digest = createHash("sha256").update("s3cret-from-a-vault").digest("hex");
    const a = parseAuth({ tokens: [{ name: "ci", token: `sha256:${digest}`, roles: ["produce", "read"] }] }, "f");
    assert.equal(a.tokens[0]!.hash.toString("hex"), digest);
    assert.throws(() => combineAuth("s3cret-from-a-vault", a), /--token \(or STREAMFN_TOKEN\) is the same secret as auth token "ci"/);
    assert.equal(combineAuth("another", a)!.tokens.length, 2);
  });

  it("reads STREAMFN_AUTH as a path or as the JSON itself, and never quotes the file's text in a JSON error", async () => {
    const dir = await mkdtemp(join(tmpdir(), "streamfn-auth-"));
    try {
      const file = join(dir, "auth.json");
      await writeFile(file, JSON.stringify({ tokens: [good] }));
      assert.equal(loadAuth(file, "--auth").tokens[0]!.name, "ops");
      assert.equal(loadAuth(JSON.stringify({ tokens: [good] }), "STREAMFN_AUTH").tokens[0]!.name, "ops");
      await writeFile(file, `{"tokens": [{"name": "x", "token": "leaky-secret-42" "roles": []}]}`);
      assert.throws(() => loadAuth(file, "--auth"), (err: Error) => {
        assert.match(err.message, new RegExp(`^auth file ${file.replace(/[/.]/g, "\\$&")} is not valid JSON`));
        assert.ok(!err.message.includes("leaky-secret-42"), err.message);
        return true;
      });
      assert.throws(() => loadAuth(join(dir, "missing.json"), "--auth"), /cannot read auth file .*missing\.json \(--auth\): ENOENT/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("starting the real binary", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "streamfn-safe-"));
    await writeFile(join(dir, "echo.ts"), fnSource(`{ async *handler(events) { for await (const e of events) yield e; } }`));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it("refuses a non-loopback --host without tokens and without --insecure, naming both", async () => {
    for (const args of [["--host", "0.0.0.0"], ["--host", "::"]]) {
      const r = await streamfn(["serve", dir, "--port", "0", ...args, "--no-watch"]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stderr, new RegExp(`streamfn: INVALID_OPTIONS: refusing to listen on --host ${args[1]!.replace(/[.:]/g, "\\$&")} without tokens`));
      assert.match(r.stderr, /--insecure/);
      assert.match(r.stderr, /--auth <file> or --token/);
      assert.doesNotMatch(r.stdout, /listening/);
    }
    // The same from HOST, and for the cluster gateway (refused before it connects to NATS).
    const env = await streamfn(["serve", dir, "--port", "0", "--no-watch"], { HOST: "0.0.0.0" });
    assert.equal(env.code, 1);
    assert.match(env.stderr, /refusing to listen on --host 0\.0\.0\.0 without tokens/);
    const gw = await streamfn(["gateway", "--nats", "nats://127.0.0.1:1", "--port", "0", "--host", "0.0.0.0"]);
    assert.equal(gw.code, 1);
    assert.match(gw.stderr, /refusing to listen on --host 0\.0\.0\.0 without tokens.*--insecure/);
  });

  it("lets --insecure past that check (shown on an address this machine does not have, so nothing listens)", async () => {
    // 192.0.2.0/24 is reserved for documentation: binding it fails after the check passed.
    const r = await streamfn(["serve", dir, "--port", "0", "--host", "192.0.2.1", "--insecure", "--no-watch"]);
    assert.equal(r.code, 1);
    assert.doesNotMatch(r.stderr, /refusing to listen/);
    assert.match(r.stderr, /EADDRNOTAVAIL/);
  });

  it("refuses a bad auth file at start, naming the file and the entry", async () => {
    const file = join(dir, "auth.json");
    await writeFile(file, JSON.stringify({ tokens: [good, { name: "reader", token: "r-secret-000000", roles: ["reader"] }] }));
    const r = await streamfn(["serve", dir, "--port", "0", "--auth", file, "--no-watch"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`streamfn: INVALID_OPTIONS: auth file ${file.replace(/[/.]/g, "\\$&")}: tokens\\[1\\] \\("reader"\\): unknown role "reader"`));
    const env = await streamfn(["serve", dir, "--port", "0", "--no-watch"], { STREAMFN_AUTH: '{"tokens": []}' });
    assert.equal(env.code, 1);
    assert.match(env.stderr, /INVALID_OPTIONS: --auth \(or STREAMFN_AUTH\): "tokens" is empty/);
    const cfg = join(dir, "streamfn.json");
    await writeFile(cfg, JSON.stringify({ auth: "auth.json" }));
    const viaConfig = await streamfn(["serve", dir, "--port", "0", "-c", cfg, "--no-watch"]);
    assert.equal(viaConfig.code, 1);
    assert.match(viaConfig.stderr, /auth file .*auth\.json: tokens\[1\] \("reader"\): unknown role "reader"/);
  });

  it("serves with an auth file given in the config file, and the CLI client's --token works against it", async () => {
    const file = join(dir, "auth2.json");
    await writeFile(file, JSON.stringify({ tokens: [good, { name: "viewer", token: "viewer-secret-99", roles: ["read"] }] }));
    const cfg = join(dir, "serve.json");
    await writeFile(cfg, JSON.stringify({ auth: "auth2.json", port: 0 }));
    const server = new Background(process.execPath, [kBin, "serve", dir, "-c", cfg, "--no-watch"], { env: envWithout("STREAMFN_TOKEN", "STREAMFN_AUTH", "HOST", "PORT") });
    try {
      const m = await server.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      const url = m[1]!;
      const ls = await streamfn(["ls", "--url", url, "--token", "viewer-secret-99"]);
      assert.equal(ls.code, 0, ls.stderr);
      assert.match(ls.stdout, /^echo\s/m);
      const rm = await streamfn(["rm", "echo", "--url", url, "--token", "viewer-secret-99"]);
      assert.equal(rm.code, 1);
      assert.match(rm.stderr, /FORBIDDEN: token "viewer" \(roles: read\) lacks the admin role needed for retiring a function/);
      const anon = await streamfn(["ls", "--url", url]);
      assert.equal(anon.code, 1);
      assert.match(anon.stderr, /UNAUTHORIZED: missing token/);
      assert.ok(!server.output.includes("viewer-secret-99") && !server.output.includes(good.token));
    } finally {
      await server.stop();
    }
  });
});
