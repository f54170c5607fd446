// `streamfn init` without the network: which streamfn spec it picks, what it writes, what it
// refuses. test/package.test.ts runs a scaffold for real from an installed tarball.
import { strict as assert } from "node:assert";
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { detectStreamfnSpec } from "../src/cli/commands/init.js";
import { buildProgram } from "../src/cli/program.js";
import { examplesOf } from "../src/cli/util.js";
import { assertRan, run } from "./helpers/processes.js";

const kRepo = fileURLToPath(new URL("../../", import.meta.url));
const kBin = join(kRepo, "bin/streamfn.js");

let tmp: string;
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), "streamfn-init-"));
});
after(() => rm(tmp, { recursive: true, force: true }));

describe("the streamfn dependency of a new project", () => {
  it("is the checkout itself when streamfn runs from one", () => {
    assert.deepEqual(detectStreamfnSpec(join(tmp, "streamfn"), "1.2.3").spec, `file:${join(tmp, "streamfn")}`);
  });

  it("is the tarball an installed copy came from, by absolute path", async () => {
    const root = join(tmp, "app");
    await mkdir(join(root, "node_modules", "streamfn"), { recursive: true });
    await writeFile(join(tmp, "streamfn-1.2.3.tgz"), "");
    const lock = { packages: { "node_modules/streamfn": { version: "1.2.3", resolved: "file:../streamfn-1.2.3.tgz" } } };
    await writeFile(join(root, "node_modules", ".package-lock.json"), JSON.stringify(lock));
    assert.equal(detectStreamfnSpec(join(root, "node_modules", "streamfn"), "1.2.3").spec, `file:${join(tmp, "streamfn-1.2.3.tgz")}`);

    await rm(join(tmp, "streamfn-1.2.3.tgz"));
    assert.equal(detectStreamfnSpec(join(root, "node_modules", "streamfn"), "1.2.3").spec, "^1.2.3", "a tarball that is gone is not used");
  });

  it("is the version from the registry otherwise", async () => {
    const root = join(tmp, "registry-app");
    await mkdir(join(root, "node_modules", "streamfn"), { recursive: true });
    const lock = { packages: { "node_modules/streamfn": { version: "1.2.3" } } };
    await writeFile(join(root, "node_modules", ".package-lock.json"), JSON.stringify(lock));
    assert.equal(detectStreamfnSpec(join(root, "node_modules", "streamfn"), "1.2.3").spec, "^1.2.3");
  });
});

describe("streamfn init", () => {
  it("writes a project that depends on this checkout and says what to run next", async () => {
    const r = assertRan("init", await run(process.execPath, [kBin, "init", "my-app", "--no-install"], { cwd: tmp }));
    const dir = join(tmp, "my-app");
    const pkg = JSON.parse(await readFile(join(dir, "package.json"), "utf8"));
    assert.equal(pkg.name, "my-app");
    assert.equal(pkg.dependencies.streamfn, `file:${kRepo.replace(/\/$/, "")}`);
    assert.equal(pkg.scripts.start, "streamfn serve functions");
    assert.equal(pkg.scripts.dev, "streamfn dev functions");
    assert.match(pkg.scripts.test, /--import tsx --test/);
    for (const dep of ["tsx", "typescript", "@types/node"]) assert.match(pkg.devDependencies[dep], /^\d+\.\d+\.\d+$/, `${dep} is pinned`);
    assert.deepEqual((await readdir(dir)).sort(), [".gitignore", "README.md", "events.ndjson", "functions", "package.json", "test", "tsconfig.json"]);
    assert.match(await readFile(join(dir, "functions", "average.ts"), "utf8"), /defineStreamFunction/);
    assert.match(await readFile(join(dir, "test", "average.test.ts"), "utf8"), /from "streamfn\/testing"/);
    assert.match(await readFile(join(dir, ".gitignore"), "utf8"), /^\.streamfn\/$/m);
    assert.match(r.stdout, new RegExp(`streamfn dependency: file:${kRepo.replace(/\/$/, "")} \\(this streamfn runs from a checkout\\)`));
    assert.match(r.stdout, /cd my-app\n\s+npm install\n\s+npm test/);
    assert.match(r.stdout, /npx streamfn send average events\.ndjson/);
  });

  it("takes --streamfn as the dependency spec", async () => {
    const r = assertRan("init", await run(process.execPath, [kBin, "init", join(tmp, "pinned"), "--no-install", "--streamfn", "^9.9.9"]));
    assert.equal(JSON.parse(await readFile(join(tmp, "pinned", "package.json"), "utf8")).dependencies.streamfn, "^9.9.9");
    assert.match(r.stdout, /streamfn dependency: \^9\.9\.9 \(--streamfn\)/);
  });

  it("refuses a directory that has files, and writes nothing into it", async () => {
    const dir = join(tmp, "busy");
    await mkdir(dir);
    await writeFile(join(dir, "notes.txt"), "mine");
    const r = await run(process.execPath, [kBin, "init", dir, "--no-install"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^streamfn: DIRECTORY_NOT_EMPTY: .*busy is not empty \(notes\.txt\)/);
    assert.deepEqual(await readdir(dir), ["notes.txt"]);
  });
});

describe("streamfn --help and --version", () => {
  it("lists one example per command and prints the package's version", async () => {
    const help = assertRan("--help", await run(process.execPath, [kBin, "--help"])).stdout;
    for (const cmd of buildProgram().commands) {
      const [example] = examplesOf(cmd);
      assert.ok(example, `${cmd.name()} has an example`);
      assert.ok(help.includes(`$ ${example}`), `${cmd.name()}'s example in:\n${help}`);
    }
    const version = JSON.parse(await readFile(join(kRepo, "package.json"), "utf8")).version;
    assert.equal(assertRan("--version", await run(process.execPath, [kBin, "--version"])).stdout.trim(), version);
  });

  // serve, dev, worker and gateway are registered alone when run (a faster start): what they
  // accept and print must be what the full command table says.
  it("gives the long-running commands the same help and errors alone as in the full table", async () => {
    for (const name of ["serve", "dev", "worker", "gateway"]) {
      const alone = assertRan(`${name} --help`, await run(process.execPath, [kBin, name, "--help"])).stdout;
      const full = assertRan(`help ${name}`, await run(process.execPath, [kBin, "help", name])).stdout;
      assert.equal(alone, full, name);
      assert.match(alone, new RegExp(`^Usage: streamfn ${name} `));
      const required = name === "worker" || name === "gateway" ? ["--nats", "nats://127.0.0.1:1"] : [];
      const bad = await run(process.execPath, [kBin, name, ...required, "--no-such-flag"]);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /^error: unknown option '--no-such-flag'/);
    }
  });
});
