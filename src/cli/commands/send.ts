import type { Command } from "commander";
import { sendStream } from "../send.js";
import { withExample } from "../util.js";

export function registerSend(program: Command): void {
  const cmd = program
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
  withExample(cmd, `printf '{"hello":1}\\n' | streamfn send echo --url http://127.0.0.1:8080`);
}
