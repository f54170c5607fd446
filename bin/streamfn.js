#!/usr/bin/env node
// The CLI as one bundled file (see scripts/build.mjs): it starts faster than its ~130 modules.
import "../dist/src/cli/main.bundle.js";
