// The `streamfn` command: settings parsing, the config file, and real `serve` processes.
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { after, describe, it } from "node:test";
import { applySetting, parsePort, readConfigFile } from "../src/cli/config.js";
import { fnSource, freePort } from "./helpers/contract-util.js";
import { StreamClient } from "./helpers/ws-client.js";

const kMain = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const kRepo = fileURLToPath(new URL("../../", import.meta.url));

describe("--set option=value", () => {
  it("sets a default for every function, or an override for one", () => {
    const defaults: Record<string, unknown> = {};
    const overrides: Record<string, Record<string, unknown>> = {};
    applySetting("idleTimeoutMs=5000", defaults, overrides);
    applySetting("echo.concurrency=4", defaults, overrides);
    applySetting("my-fn_2.maxEvents=10", defaults, overrides);
    applySetting("sandbox=thread", defaults, overrides);
    applySetting("replay=false", defaults, overrides);
    assert.deepEqual(defaults, { idleTimeoutMs: 5000, sandbox: "thread", replay: false });
    assert.deepEqual(overrides, { echo: { concurrency: 4 }, "my-fn_2": { maxEvents: 10 } });
  });

  it("refuses malformed settings, unknown options and bad values, naming them", () => {
    const cases: [string, RegExp][] = [
      ["idleTimeoutMs", /option=value/],
      ["echo.bogus=1", /unknown option "bogus"/],
      ["concurrency=0", /"concurrency" must be an integer >= 1, got 0/],
      ["idleTimeoutMs=soon", /"idleTimeoutMs" must be an integer/],
      ["idleTimeoutMs=1.5", /"idleTimeoutMs" must be an integer/],
      ["sandbox=vm", /sandbox must be "thread", "process" or "inline"/],
      ["replay=1", /replay must be true or false, got 1/],
      ["replay=yes", /replay must be true or false, got "yes"/],
    ];
    for (const [setting, message] of cases) {
      const defaults: Record<string, unknown> = {};
      const overrides: Record<string, Record<string, unknown>> = {};
      assert.throws(() => applySetting(setting, defaults, overrides), (err: { code?: string; message: string }) => {
        assert.equal(err.code, "INVALID_OPTIONS", setting);
        assert.match(err.message, message);
        return true;
      });
      assert.deepEqual(defaults, {}, `a refused setting (${setting}) changes nothing`);
    }
  });
});

describe("ports", () => {
  it("takes 0-65535 as a number or a decimal string; refuses anything else", () => {
    assert.equal(parsePort("8080", "p"), 8080);
    assert.equal(parsePort(0, "p"), 0);
    assert.equal(parsePort(65535, "p"), 65535);
    for (const bad of ["", "80a", "-1", "1e3", 65536, 1.5, null, true]) {
      assert.throws(() => parsePort(bad, "port"), { code: "INVALID_OPTIONS" }, JSON.stringify(bad));
    }
  });
});

describe("config file", () => {
  let dir: string;
  const write = async (name: string, content: string): Promise<string> => {
    dir ??= await mkdtemp(join(tmpdir(), "streamfn-cli-"));
    const path = join(dir, name);
    await writeFile(path, content);
    return path;
  };
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("reads server settings, defaults and per-function options", async () => {
    const path = await write(
      "ok.json",
      JSON.stringify({
        port: 9123,
        host: "127.0.0.1",
        token: "s3cret",
        defaults: { idleTimeoutMs: 2000 },
        functions: { echo: { concurrency: 2, maxEvents: 9 } },
      }),
    );
    assert.deepEqual(readConfigFile(path), {
      port: 9123,
      host: "127.0.0.1",
      token: "s3cret",
      defaults: { idleTimeoutMs: 2000 },
      functions: { echo: { concurrency: 2, maxEvents: 9 } },
    });
  });

  it("refuses bad files with INVALID_OPTIONS naming the problem", async () => {
    const cases: [string, string, RegExp][] = [
      ["not-json.json", "{port: 1", /cannot read config/],
      ["array.json", "[]", /must be a JSON object/],
      ["unknown.json", JSON.stringify({ prot: 1 }), /unknown key "prot"/],
      ["bad-default.json", JSON.stringify({ defaults: { maxEvents: 0 } }), /defaults.*"maxEvents" must be an integer >= 1/],
      ["bad-fn.json", JSON.stringify({ functions: { echo: { nope: 1 } } }), /functions\.echo.*unknown option "nope"/],
      ["bad-port.json", JSON.stringify({ port: "eighty" }), /port/],
      ["port-range.json", JSON.stringify({ port: 70000 }), /port/],
      ["bad-host.json", JSON.stringify({ host: 127 }), /host/],
    ];
    for (const [name, content, message] of cases) {
      const path = await write(name, content);
      assert.throws(() => readConfigFile(path), (err: { code?: string; message: string }) => {
        assert.equal(err.code, "INVALID_OPTIONS", name);
        assert.match(err.message, message, name);
        return true;
      });
    }
    assert.throws(() => readConfigFile(join(tmpdir(), "no-such-streamfn-config.json")), /cannot read config/);
  });
});

interface Served {
  child: ChildProcess;
  firstLine: string;
  /** stdout and stderr so far, for failure messages. */
  output: () => string;
  stop(): Promise<number | null>;
}

/** Spawns `streamfn serve`, resolves with its first stdout line (or rejects if it exits first). */
function serve(args: string[], env: Record<string, string> = {}): Promise<Served> {
  const child = spawn(process.execPath, [kMain, "serve", ...args], {
    cwd: kRepo,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let all = "";
  child.stderr!.on("data", (c: Buffer) => (all += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`serve printed nothing within 20 s: ${all}`));
    }, 20_000);
    const lines = createInterface({ input: child.stdout! });
    let first: string | undefined;
    lines.on("line", (line) => {
      all += `${line}\n`;
      if (first !== undefined) return;
      first = line;
      clearTimeout(timer);
      resolve({
        child,
        firstLine: line,
        output: () => all,
        async stop() {
          if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
          return exited;
        },
      });
    });
    void exited.then((code) => {
      clearTimeout(timer);
      if (first === undefined) reject(new Error(`serve exited (${code}) before printing: ${all}`));
    });
  });
}

describe("streamfn serve (a real process)", () => {
  it("serves a directory with --config and --set applied, says where it listens, and stops on SIGTERM", async () => {
    const dir = await mkdtemp(join(tmpdir(), "streamfn-serve-"));
    try {
      await writeFile(
        join(dir, "count.ts"),
        fnSource(`{
          idleTimeoutMs: 60000,
          async handler(events, ctx) {
            let n = 0;
            for await (const _ of events) n++;
            return { n, endReason: ctx.endReason };
          },
        }`),
      );
      await writeFile(join(dir, "config.json"), JSON.stringify({ defaults: { maxEvents: 50 }, functions: { count: { concurrency: 3 } } }));
      const port = await freePort();
      const served = await serve([dir, "--port", String(port), "-c", join(dir, "config.json"), "--set", "count.idleTimeoutMs=150"]);
      try {
        assert.match(served.firstLine, new RegExp(`^streamfn listening on http://127\\.0\\.0\\.1:${port} \\(1 function: count;`));
        assert.match(served.firstLine, /streamfn(\.js)? send count/);

        const res = await fetch(`http://127.0.0.1:${port}/v1/status`);
        const status = (await res.json()) as { functions: { name: string; options: Record<string, unknown> }[] };
        const options = status.functions[0]!.options;
        assert.equal(options.idleTimeoutMs, 150, "--set beats the function's own 60000");
        assert.equal(options.concurrency, 3, "from the config file's functions section");
        assert.equal(options.maxEvents, 50, "from the config file's defaults");

        const c = await StreamClient.connect(`ws://127.0.0.1:${port}/v1/functions/count/streams`);
        c.event(1);
        c.event(2);
        const end = await c.waitEnd();
        assert.equal(end.reason, "idle");
        assert.deepEqual(c.outputs(), [{ n: 2, endReason: "idle" }]);
      } finally {
        const code = await served.stop();
        assert.equal(code, 0, served.output());
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("exits non-zero with a clear message for a bad --set", async () => {
    const port = await freePort();
    await assert.rejects(serve(["examples/functions", "--port", String(port), "--set", "echo.concurency=2"]), (err: Error) => {
      assert.match(err.message, /INVALID_OPTIONS: .*unknown option "concurency"/);
      assert.match(err.message, /exited \(1\)/);
      return true;
    });
  });

  it("exits non-zero with a clear message for a port that is not a port", async () => {
    await assert.rejects(serve(["examples/functions", "--port", "http"]), /INVALID_OPTIONS: --port \(or \$PORT\) must be an integer from 0 to 65535, got "http"/);
    await assert.rejects(serve(["examples/functions"], { PORT: "99999" }), /INVALID_OPTIONS: .*got "99999"/);
  });

  it("`npm start` (serve examples/functions) listens on $PORT and says so in its first line", async () => {
    const port = await freePort();
    const served = await serve(["examples/functions"], { PORT: String(port) });
    try {
      assert.match(served.firstLine, new RegExp(`^streamfn listening on http://127\\.0\\.0\\.1:${port} `));
      assert.match(served.firstLine, /functions?: .*echo/);
      const c = await StreamClient.connect(`ws://127.0.0.1:${port}/v1/functions/echo/streams`);
      c.event({ hello: 1 });
      c.end();
      await c.waitEnd();
      assert.deepEqual(c.outputs(), [{ hello: 1 }]);
    } finally {
      assert.equal(await served.stop(), 0, served.output());
    }
  });
});
