// The entry of a sandbox that runs in a worker thread or a child process. No top-level await:
// the build bundles this file as CommonJS (see entries.ts).
import { describeFatal } from "./sandbox-outbox.js";
import { runSandbox } from "./sandbox-runtime.js";
import { connectSandboxPort } from "./sandbox-port.js";

async function main(): Promise<void> {
  const port = await connectSandboxPort();

  if (port.fatal) {
    const fatal = port.fatal;
    // A child process that dies of an uncaught error says why first (threads report through their `error` event).
    process.on("uncaughtException", (err) => {
      void fatal(describeFatal(err)).finally(() => process.exit(1));
    });
  }

  process.on("unhandledRejection", (reason) => {
    console.warn(`[${port.init.functionName}] unhandled promise rejection in function code:`, reason);
  });

  await runSandbox(port);
}

main().catch((err: unknown) => {
  // As a failed top-level await would: the thread's `error` event, or the process's fatal report.
  setImmediate(() => {
    throw err;
  });
});
