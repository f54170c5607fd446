#!/usr/bin/env node
// For `node bin/streamfn.js` in a checkout; the installed binary is streamfn.cjs itself, which
// spares a start Node's ES module loader.
import "./streamfn.cjs";
