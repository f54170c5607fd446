import { strict as assert } from "node:assert";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { ErrorCodes } from "../src/api/errors.js";
import { kOptionNames } from "../src/api/options.js";

// The README is the reference users match codes and options against: it must not drift.
const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");

describe("README reference tables", () => {
  it("lists every error code", () => {
    const missing = Object.keys(ErrorCodes).filter((code) => !readme.includes(`\`${code}\``));
    assert.deepEqual(missing, []);
  });

  it("lists every function option", () => {
    const missing = kOptionNames.filter((name) => !readme.includes(`| \`${name}\` |`));
    assert.deepEqual(missing, []);
  });
});
