import { resolve } from "node:path";
import type { Command } from "commander";
import type { TypeChecker } from "../dev/typecheck.js";
import { parseCount } from "../config.js";
import { withExample } from "../util.js";
import { addServeFlags, announce, startFromFlags, stopOnSignals } from "./serve.js";
import type { ServeFlags } from "./serve.js";

interface DevFlags extends ServeFlags {
  outputs: number;
  typecheck: boolean;
}

export function registerDev(program: Command): void {
  const cmd = addServeFlags(
    program
      .command("dev")
      .description(
        "serve a functions directory while you edit it: redeploys on every change (imports included), " +
          "prints each stream's open, outputs, logs and end, and type-checks the functions",
      ),
  )
    .option("--outputs <n>", "outputs printed per stream; later ones are counted once a second", (v) => parseCount(v, "--outputs"), 10)
    .option("--no-typecheck", "do not type-check the functions")
    .action(async (dir: string, opts: DevFlags) => {
      // Loaded here, not at the top: `streamfn --help` loads every command module.
      const [{ createServerLogger }, { DevPrinter }, { makeStyle, wantsColor }, { TypeChecker }] = await Promise.all([
        import("../../server/logger.js"),
        import("../dev/printer.js"),
        import("../dev/style.js"),
        import("../dev/typecheck.js"),
      ]);
      const style = makeStyle(wantsColor(process.stdout));
      const printer = new DevPrinter({ write: (line) => console.log(line), style, outputsPerStream: opts.outputs });
      let checker: TypeChecker | undefined;
      const server = await startFromFlags(
        dir,
        { ...opts, watch: true },
        {
          observer: printer.router,
          logger: createServerLogger({ destination: { write: (line: string) => printer.serverRecord(line) } }),
          onWatchedChange: () => checker?.request(),
        },
        (line) => printer.serverLine(line),
      );
      stopOnSignals(server, server.graceMs);
      announce(server, Date.now() - server.startedAt);
      if (opts.typecheck) {
        checker = new TypeChecker({
          dir: resolve(dir),
          cwd: process.cwd(),
          files: () => server.registry.sourceFiles,
          print: (line) => printer.line(line),
          style,
        });
        checker.request();
      }
    });
  withExample(cmd, "streamfn dev ./functions --port 8080", "streamfn dev ./functions --outputs 3 --no-typecheck");
}
