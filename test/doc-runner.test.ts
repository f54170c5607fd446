// The runner that keeps docs/getting-started.md honest must itself fail when a guide is wrong.
import { strict as assert } from "node:assert";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { runGuide, shBlocks } from "./helpers/doc-runner.js";
import { cleanNpmEnv } from "./helpers/processes.js";

const guide = (expect: string): string => `
# A guide

\`\`\`sh
mkdir -p sub/dir   # comments are fine
cd sub
\`\`\`

<!-- test: background ready=/listening/ -->
\`\`\`sh
node -e "console.log('listening'); process.stdin.resume(); setTimeout(() => console.log('reloaded 2'), 300); setInterval(() => {}, 1000)"
\`\`\`

<!-- test: wait=/reloaded \\d/ expect=/${expect}/ -->
\`\`\`sh
echo "in $(basename "$PWD")" \\
  "and on"
\`\`\`

<!-- test: skip -->
\`\`\`sh
false
\`\`\`
`;

describe("the guide runner", () => {
  let tmp: string;
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), "streamfn-guide-"));
  });
  after(() => rm(tmp, { recursive: true, force: true }));

  it("reads sh blocks with their marks", () => {
    const blocks = shBlocks(guide("x"));
    assert.deepEqual(
      blocks.map((b) => [b.commands.length, b.marks]),
      [
        [2, {}],
        [1, { background: true, ready: "listening" }],
        [1, { wait: "reloaded \\d", expect: "x" }],
        [1, { skip: true }],
      ],
    );
    assert.equal(blocks[2]!.commands[0], `echo "in $(basename "$PWD")"    "and on"`);
  });

  it("runs the blocks in order, following cd, waiting for background output", async () => {
    const done = await runGuide(shBlocks(guide("in sub and on")), { cwd: tmp, env: cleanNpmEnv() });
    assert.equal(done.cwd, join(tmp, "sub"));
    assert.match(done.background[0]!.output, /reloaded 2/);
    await done.stop();
    assert.equal(done.background[0]!.running, false);
  });

  it("fails naming the guide line whose output is not what the guide says", async () => {
    await assert.rejects(runGuide(shBlocks(guide("in elsewhere")), { cwd: tmp, env: cleanNpmEnv() }), /guide line 15: output does not match \/in elsewhere\//);
  });

  it("fails on a command that fails", async () => {
    await assert.rejects(runGuide(shBlocks("```sh\nexit 3\n```\n"), { cwd: tmp, env: cleanNpmEnv() }), /guide line 1: exit 3 exited with 3/);
  });
});
