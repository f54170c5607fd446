import { isAbsolute, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { Command, Option } from "commander";
import { StreamfnError } from "../api/errors.js";
import type { StreamFunctionOptions } from "../api/types.js";
import { StreamfnServer } from "../server/server.js";
import { applySetting, parsePort, readConfigFile } from "./config.js";
import { sendStream } from "./send.js";

const program = new Command();
program.name("streamfn").description("Serve and call stream functions").showHelpAfterError();

program
  .command("serve")
  .description("serve every function file in a directory (one file = one function)")
  .argument("[dir]", "functions directory", "functions")
  .addOption(new Option("-p, --port <port>", "port to listen on").env("PORT").argParser((v) => parsePort(v, "--port (or $PORT)")))
  .addOption(new Option("--host <host>", "address to listen on").env("HOST"))
  .addOption(new Option("--token <token>", "require this bearer token").env("STREAMFN_TOKEN"))
  .option("-c, --config <file>", "JSON config file (port, host, token, defaults, functions)")
  .option("--set <option=value>", "set a function option for all (idleTimeoutMs=5000) or one function (echo.concurrency=4); repeatable", collect, [])
  .option("--no-watch", "do not redeploy functions when their files change, appear or go")
  .option("--spare-threads <n>", "worker threads kept booted for cold starts (0 turns it off)", parseCount, 1)
  .action(async (dir: string, opts: { port?: number; host?: string; token?: string; config?: string; set: string[]; watch: boolean; spareThreads: number }) => {
    const cfg = opts.config ? readConfigFile(opts.config) : {};
    const defaults: Record<string, unknown> = { ...cfg.defaults };
    const overrides: Record<string, Record<string, unknown>> = {};
    for (const [k, v] of Object.entries(cfg.functions ?? {})) overrides[k] = { ...v };
    for (const s of opts.set) applySetting(s, defaults, overrides);
    const started = Date.now();
    const server = await StreamfnServer.start({
      functionsDir: dir,
      port: opts.port ?? cfg.port ?? 8080,
      host: opts.host ?? cfg.host ?? "127.0.0.1",
      token: opts.token ?? cfg.token,
      defaults: defaults as StreamFunctionOptions,
      overrides: overrides as Record<string, StreamFunctionOptions>,
      watch: opts.watch,
      spareThreads: opts.spareThreads,
    });
    const names = server.registry.functions().filter((f) => f.current).map((f) => f.name);
    const first = names.includes("echo") ? "echo" : (names[0] ?? "<function>");
    const ws = server.url.replace(/^http/, "ws");
    console.log(
      `streamfn listening on ${server.url} (${names.length} function${names.length === 1 ? "" : "s"}: ${names.join(", ") || "none"}; ready in ${Date.now() - started} ms). ` +
        `First stream: printf '{"hello":1}\\n{"hello":2}\\n' | ${selfCommand()} send ${first} --url ${server.url} — or connect a WebSocket to ${ws}/v1/functions/${first}/streams`,
    );
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) {
        process.exit(130);
      }
      stopping = true;
      console.log(`streamfn: ${signal}: letting running streams finish (up to 5 s; again to force)`);
      void server.close().then(() => process.exit(0));
    };
    process.on("SIGINT", () => stop("SIGINT"));
    process.on("SIGTERM", () => stop("SIGTERM"));
  });

program
  .command("send")
  .description("stream events to a function over WebSocket and print its outputs (NDJSON in, NDJSON out)")
  .argument("<function>", "function name")
  .argument("[file]", "file with one JSON value per line (default: stdin)")
  .option("--url <url>", "server URL", process.env.STREAMFN_URL ?? "http://127.0.0.1:8080")
  .option("--stream <id>", "stream id (default: the server names it)")
  .option("--token <token>", "bearer token", process.env.STREAMFN_TOKEN)
  .option("--envelopes", "lines are whole envelopes ({\"data\":…,\"seq\":…}) rather than bare payloads")
  .action(async (fn: string, file: string | undefined, opts: { url: string; stream?: string; token?: string; envelopes?: boolean }) => {
    const status = await sendStream({ functionName: fn, file, ...opts });
    process.exitCode = status === "completed" ? 0 : 1;
  });

/** How to run this CLI from the current directory: a path when run from a checkout, else the bin name. */
function selfCommand(): string {
  const bin = fileURLToPath(new URL("../../../bin/streamfn.js", import.meta.url));
  const rel = relative(process.cwd(), bin);
  return rel.startsWith("..") || isAbsolute(rel) ? "npx streamfn" : `node ${rel}`;
}

function parseCount(value: string): number {
  if (!/^\d{1,3}$/.test(value)) throw new StreamfnError("INVALID_OPTIONS", `--spare-threads takes a count 0-999, got "${value}"`);
  return Number(value);
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

program.parseAsync().catch((err: unknown) => {
  if (err instanceof StreamfnError) console.error(`streamfn: ${err.code}: ${err.message}`);
  else if (err instanceof Error && typeof (err as { code?: unknown }).code === "string") {
    // System errors (ECONNREFUSED, EADDRINUSE…) read better as one line than as a stack.
    console.error(`streamfn: ${String((err as { code?: unknown }).code)}: ${err.message}`);
  } else console.error(err);
  process.exit(1);
});
