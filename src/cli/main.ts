import { StreamfnError } from "../api/errors.js";
import { buildProgram } from "./program.js";

buildProgram()
  .parseAsync()
  .catch((err: unknown) => {
    if (err instanceof StreamfnError) console.error(`streamfn: ${err.code}: ${err.message}`);
    else if (err instanceof Error && typeof (err as { code?: unknown }).code === "string") {
      // System errors (ECONNREFUSED, EADDRINUSE…) read better as one line than as a stack.
      console.error(`streamfn: ${String((err as { code?: unknown }).code)}: ${err.message}`);
    } else console.error(err);
    process.exit(1);
  });
