import type { Command } from "commander";
import { registerCancel } from "./commands/cancel.js";
import { registerDeploy } from "./commands/deploy.js";
import { registerDev } from "./commands/dev.js";
import { registerInit } from "./commands/init.js";
import { registerLogs } from "./commands/logs.js";
import { registerLs } from "./commands/ls.js";
import { registerRm } from "./commands/rm.js";
import { registerSend } from "./commands/send.js";
import { registerServe } from "./commands/serve.js";
import { registerStatus } from "./commands/status.js";
import { registerStreams } from "./commands/streams.js";
import { registerWorker } from "./commands/worker.js";
import { registerGateway } from "./commands/gateway.js";
import { programBase } from "./program-base.js";
import { commandExamples } from "./util.js";

/**
 * The `streamfn` command: one module per subcommand under commands/, registered here in the
 * order a function's life goes (write, run, call, ship, operate).
 */
export function buildProgram(): Command {
  const program = programBase();
  registerInit(program);
  registerDev(program);
  registerServe(program);
  registerSend(program);
  registerDeploy(program);
  registerLs(program);
  registerStatus(program);
  registerStreams(program);
  registerLogs(program);
  registerCancel(program);
  registerRm(program);
  registerWorker(program);
  registerGateway(program);
  // A function, so commands registered after this line are listed too.
  program.addHelpText("after", () => commandExamples(program.commands));
  return program;
}
