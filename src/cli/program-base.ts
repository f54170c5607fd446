import { Command } from "commander";
import { packageVersion } from "./util.js";

/** The `streamfn` command itself, before any subcommand is registered. */
export function programBase(): Command {
  return new Command()
    .name("streamfn")
    .description("Write, run, call and operate stream functions")
    .version(packageVersion(), "-V, --version", "print the streamfn version")
    .showHelpAfterError();
}
