#!/usr/bin/env node
// The CLI as one bundled CommonJS file (see scripts/build.mjs): it starts faster than its
// ~130 ES modules. Required, not imported, so Node does not scan it for export names.
import { createRequire } from "node:module";

createRequire(import.meta.url)("../dist/src/cli/main.bundle.cjs");
