import { Command } from "commander";
import { registerInit } from "./commands/init.js";
import { registerSend } from "./commands/send.js";
import { registerServe } from "./commands/serve.js";
import { commandExamples, packageVersion } from "./util.js";

/** The `streamfn` command: one module per subcommand under commands/, registered here. */
export function buildProgram(): Command {
  const program = new Command();
  program
    .name("streamfn")
    .description("Serve and call stream functions")
    .version(packageVersion(), "-V, --version", "print the streamfn version")
    .showHelpAfterError();
  registerInit(program);
  registerServe(program);
  registerSend(program);
  // A function, so commands registered after this line are listed too.
  program.addHelpText("after", () => commandExamples(program.commands));
  return program;
}
