import { Command } from "commander";
import { registerLogs } from "./commands/logs.js";
import { registerCancel } from "./commands/cancel.js";
import { registerDeploy } from "./commands/deploy.js";
import { registerLs } from "./commands/ls.js";
import { registerRm } from "./commands/rm.js";
import { registerDev } from "./commands/dev.js";
import { registerSend } from "./commands/send.js";
import { registerServe } from "./commands/serve.js";
import { registerStatus } from "./commands/status.js";
import { registerStreams } from "./commands/streams.js";

/** The `streamfn` command: one module per subcommand under commands/, registered here. */
export function buildProgram(): Command {
  const program = new Command();
  program.name("streamfn").description("Serve and call stream functions").showHelpAfterError();
  registerServe(program);
  registerDev(program);
  registerSend(program);
  registerLogs(program);
  registerDeploy(program);
  registerLs(program);
  registerStatus(program);
  registerStreams(program);
  registerCancel(program);
  registerRm(program);
  return program;
}
