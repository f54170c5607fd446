#!/usr/bin/env node
"use strict";
// Runs the CLI: one bundled CommonJS file (see scripts/build.mjs), which starts faster than its
// ~130 ES modules. This file is CommonJS too, so a start does not set up Node's ES module loader
// for it.
require("../dist/src/cli/main.bundle.cjs");
