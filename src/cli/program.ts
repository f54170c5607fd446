import { Command } from "commander";
import { registerSend } from "./commands/send.js";
import { registerServe } from "./commands/serve.js";

/** The `streamfn` command: one module per subcommand under commands/, registered here. */
export function buildProgram(): Command {
  const program = new Command();
  program.name("streamfn").description("Serve and call stream functions").showHelpAfterError();
  registerServe(program);
  registerSend(program);
  return program;
}
