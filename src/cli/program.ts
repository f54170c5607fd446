import { Command } from "commander";
import { registerDev } from "./commands/dev.js";
import { registerSend } from "./commands/send.js";
import { registerServe } from "./commands/serve.js";

/** The `streamfn` command: one module per subcommand under commands/, registered here. */
export function buildProgram(): Command {
  const program = new Command();
  program.name("streamfn").description("Serve and call stream functions").showHelpAfterError();
  registerServe(program);
  registerDev(program);
  registerSend(program);
  return program;
}
