import type { Command } from "commander";
import { StreamfnError } from "../api/errors.js";
import { kDefaultOptions } from "../api/options.js";
import { bootSparesEarly } from "../instances/spare-threads.js";
import { programBase } from "./program-base.js";

// Commands that run sandboxes boot their spare thread before anything else loads (see
// bootSparesEarly); `--spare-threads 0` or another default heap size terminates it.
if (process.argv[2] === "serve" || process.argv[2] === "dev" || process.argv[2] === "worker") bootSparesEarly(1, kDefaultOptions.memoryMb);

/**
 * Long-running commands, registered alone when they are the one run: a server, or a worker
 * scaling out, then does not first load the module of every other command (about 20 ms of a
 * start here). Their help and errors read the same as with the full table.
 */
const kAlone: Record<string, () => Promise<(program: Command) => void>> = {
  serve: async () => (await import("./commands/serve.js")).registerServe,
  dev: async () => (await import("./commands/dev.js")).registerDev,
  worker: async () => (await import("./commands/worker.js")).registerWorker,
  gateway: async () => (await import("./commands/gateway.js")).registerGateway,
};

async function program(name: string | undefined): Promise<Command> {
  const alone = name !== undefined && Object.hasOwn(kAlone, name) ? kAlone[name] : undefined;
  if (!alone) return (await import("./program.js")).buildProgram();
  const program = programBase();
  (await alone())(program);
  return program;
}

program(process.argv[2])
  .then((p) => p.parseAsync())
  .catch((err: unknown) => {
    if (err instanceof StreamfnError) console.error(`streamfn: ${err.code}: ${err.message}`);
    else if (err instanceof Error && typeof (err as { code?: unknown }).code === "string") {
      // System errors (ECONNREFUSED, EADDRINUSE…) read better as one line than as a stack.
      console.error(`streamfn: ${String((err as { code?: unknown }).code)}: ${err.message}`);
    } else console.error(err);
    process.exit(1);
  });
