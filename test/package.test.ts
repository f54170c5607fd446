// streamfn as its users get it: `npm pack` of this checkout, installed into an empty project,
// used only through the installed `streamfn` binary and `import … from "streamfn"`; then the
// project `streamfn init` scaffolds, and docs/getting-started.md run command by command.
// Slow (npm installs, some from the registry): tens of seconds.
import { strict as assert } from "node:assert";
import { readFileSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { buildProgram } from "../src/cli/program.js";
import { freePort } from "./helpers/contract-util.js";
import { runGuide, shBlocks } from "./helpers/doc-runner.js";
import { Background, assertRan, cleanNpmEnv, run } from "./helpers/processes.js";
import { StreamClient } from "./helpers/ws-client.js";

const kRepo = fileURLToPath(new URL("../../", import.meta.url));
const kPackage = JSON.parse(await readFile(join(kRepo, "package.json"), "utf8")) as {
  version: string;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};
const kMinutes = 60_000;
// Quiet, cache-first npm for every install below (the scaffold's own included).
const kNpmEnv = { npm_config_audit: "false", npm_config_fund: "false", npm_config_prefer_offline: "true", npm_config_update_notifier: "false" };

const npm = (args: string[], cwd: string, extra: Record<string, string> = {}) => run("npm", args, { cwd, env: cleanNpmEnv({ ...kNpmEnv, ...extra }) });
const npx = (args: string[], cwd: string, extra: Record<string, string> = {}) => run("npx", args, { cwd, env: cleanNpmEnv({ ...kNpmEnv, ...extra }) });
const warnLines = (text: string): string[] => text.split("\n").filter((l) => /^npm warn/i.test(l));

describe("the npm package", { timeout: 10 * kMinutes }, () => {
  let tmp: string;
  let tarball: string;
  let packed: { filename: string; files: { path: string }[]; entryCount: number; size: number; unpackedSize: number };
  const servers: Background[] = [];

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), "streamfn-package-"));
    const r = assertRan("npm pack", await npm(["pack", "--json", "--pack-destination", tmp], kRepo));
    packed = (JSON.parse(r.stdout.slice(r.stdout.indexOf("["))) as (typeof packed)[])[0]!;
    tarball = join(tmp, packed.filename);
  });

  after(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await removeNpxInstallsOf(tmp);
    await rm(tmp, { recursive: true, force: true });
  });

  it("carries the runtime, its types, the CLI and the docs, and nothing of the repository's own", () => {
    const paths = packed.files.map((f) => f.path);
    for (const p of ["package.json", "README.md", "bin/streamfn.js", "dist/src/api/index.js", "dist/src/api/index.d.ts", "dist/src/api/testing.js", "dist/src/api/testing.d.ts", "dist/src/cli/main.js", "dist/src/runtime/worker-main.js", "bin/streamfn.cjs", "dist/src/cli/main.bundle.cjs", "dist/src/runtime/worker-main.bundle.cjs", "dist/src/runtime/check-main.bundle.cjs", "docs/getting-started.md", "docs/cli.md"]) {
      assert.ok(paths.includes(p), `${p} is in the tarball`);
    }
    // What users run imports only node: builtins and streamfn's own dependencies (and, in the
    // files `streamfn init` writes, streamfn itself).
    const own = new Set([...Object.keys(kPackage.dependencies), "streamfn"]);
    const imported = new Set<string>();
    for (const p of paths.filter((p) => p.endsWith(".js"))) {
      const code = readFileSync(join(kRepo, p), "utf8");
      for (const m of code.matchAll(/(?:^|\n)\s*(?:import|export)\b[^;]*?\bfrom\s*"([^"]+)"|\b(?:import|importModule)\(\s*"([^"]+)"\s*\)|^import\s+"([^"]+)"/gm)) {
        const spec = m[1] ?? m[2] ?? m[3]!;
        if (!spec.startsWith(".") && !spec.startsWith("node:")) imported.add(spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!);
      }
    }
    assert.deepEqual([...imported].filter((name) => !own.has(name)), [], "imports outside dependencies");
    assert.ok(imported.has("esbuild") && imported.has("ws"), `the scan sees bare imports (${[...imported].join(", ")})`);
    const stray = paths.filter((p) => /^(test|bench|examples|scripts|src|\.ci|dist\/(test|bench|examples))\//.test(p) || p.endsWith(".map") || p.startsWith("tsconfig"));
    assert.deepEqual(stray, []);
  });

  describe("installed into an empty project", () => {
    let app: string;
    before(async () => {
      app = join(tmp, "app");
      await mkdir(app);
      await writeFile(join(app, "package.json"), JSON.stringify({ name: "app", version: "1.0.0", private: true }));
    });

    it("installs without a warning to act on, and without streamfn's development dependencies", async () => {
      const r = assertRan("npm install", await npm(["install", tarball, "--no-audit", "--no-fund", "--prefer-offline"], app));
      // npm >= 11.16 lists every dependency's install script for the root project to review
      // (only the root's allowScripts counts). streamfn's only such dependency is esbuild, whose
      // postinstall streamfn does not need: the scaffold below marks it reviewed and installs
      // without any warning.
      const warnings = warnLines(r.stdout + r.stderr).filter((l) => !/^npm warn install-scripts/.test(l));
      assert.deepEqual(warnings, []);
      const reviewed = [...(r.stdout + r.stderr).matchAll(/^npm warn install-scripts {3}(\S+)@/gm)].map((m) => m[1]);
      assert.ok(reviewed.every((name) => name === "esbuild"), `only esbuild's script is listed: ${reviewed.join(", ")}`);
      const installed = await readdir(join(app, "node_modules"));
      const scopes = await Promise.all(installed.filter((n) => n.startsWith("@")).map(async (s) => (await readdir(join(app, "node_modules", s))).map((n) => `${s}/${n}`)));
      const all = new Set([...installed, ...scopes.flat()]);
      // A development dependency may still be there because a runtime dependency depends on it
      // itself (mqtt lists @types/ws and @types/readable-stream, which brings @types/node): that
      // is the dependency's choice, not streamfn shipping its own development tools.
      const required = new Set<string>();
      for (const name of all) {
        try {
          const pkg = JSON.parse(await readFile(join(app, "node_modules", name, "package.json"), "utf8")) as { dependencies?: Record<string, string> };
          for (const d of Object.keys(pkg.dependencies ?? {})) required.add(d);
        } catch {
          // a scope folder or a package without package.json
        }
      }
      assert.deepEqual(Object.keys(kPackage.devDependencies).filter((d) => all.has(d) && !required.has(d)), []);
    });

    it("has a streamfn binary that prints its version and lists every command", async () => {
      assert.equal(assertRan("--version", await npx(["streamfn", "--version"], app)).stdout.trim(), kPackage.version);
      const help = assertRan("--help", await npx(["streamfn", "--help"], app)).stdout;
      for (const cmd of buildProgram().commands) assert.match(help, new RegExp(`^  ${cmd.name()}\\b`, "m"), `${cmd.name()} in:\n${help}`);
    });

    it("imports from streamfn and streamfn/testing", async () => {
      const script = `
        import { createRequire } from "node:module";
        import { defineStreamFunction, StreamfnError } from "streamfn";
        import { runStream } from "streamfn/testing";
        const doubled = defineStreamFunction({
          async *handler(events, ctx) {
            for await (const n of events) yield n * 2;
            yield ctx.endReason;
          },
        });
        const { version } = createRequire(import.meta.url)("streamfn/package.json");
        console.log(JSON.stringify({ outputs: await runStream(doubled, [1, 2, 3]), version, error: typeof StreamfnError }));`;
      const r = assertRan("node", await run(process.execPath, ["--input-type=module", "-e", script], { cwd: app }));
      assert.deepEqual(JSON.parse(r.stdout), { outputs: [2, 4, 6, "end"], version: kPackage.version, error: "function" });
    });

    describe("streamfn init my-app", () => {
      let project: string;
      before(async () => {
        const r = assertRan("streamfn init", await npx(["streamfn", "init", "my-app"], app));
        project = join(app, "my-app");
        assert.match(r.stdout, new RegExp(`streamfn dependency: file:${escape(tarball)} \\(the tarball this streamfn was installed from\\)`));
        assert.deepEqual(warnLines(r.stdout + r.stderr), [], "the scaffold's npm install prints no warning");
        assert.match(r.stdout, /cd my-app\n\s+npm test/);
      });

      it("passes its own tests and type check", async () => {
        const t = assertRan("npm test", await npm(["test"], project));
        assert.match(t.stdout, /^# pass 3$/m);
        assertRan("npm run typecheck", await npm(["run", "typecheck"], project));
      });

      it("serves its function with the installed binary, over a real WebSocket", async () => {
        const port = await freePort();
        const server = new Background("npx", ["streamfn", "serve", "functions", "--port", String(port)], { cwd: project, env: cleanNpmEnv(kNpmEnv) });
        servers.push(server);
        await server.waitFor(/streamfn listening on http:\/\/127\.0\.0\.1:\d+ \(1 function: average/);
        const c = await StreamClient.connect(`ws://127.0.0.1:${port}/v1/functions/average/streams`);
        for (const value of [1, 2, 6]) c.event({ value });
        c.end();
        assert.equal((await c.waitEnd(20_000)).status, "completed");
        assert.deepEqual(c.outputs(), [
          { seq: 1, value: 1, average: 1 },
          { seq: 2, value: 2, average: 1.5 },
          { seq: 3, value: 6, average: 3 },
          { summary: { count: 3, average: 3, min: 1, max: 6 }, endReason: "end" },
        ]);
        // The dashboard's charting library comes from the installed uplot package, not a CDN.
        const page = await (await fetch(`http://127.0.0.1:${port}/`)).text();
        const lib = /<script src="(\/dashboard\/assets\/[^"]+)"/.exec(page)?.[1];
        assert.ok(lib, "the page loads its script from the server");
        const asset = await fetch(`http://127.0.0.1:${port}${lib}`);
        assert.equal(asset.status, 200);
        assert.match(await asset.text(), /uPlot/);
        await server.stop();
        const kept = join(project, "functions", ".streamfn");
        assert.deepEqual((await readdir(kept)).sort(), [".gitignore", "build-cache"], "bundles removed on a clean stop, the build cache kept");
        // The next start of the installed binary reuses the bundle and the load check.
        const again = new Background("npx", ["streamfn", "serve", "functions", "--port", String(port)], { cwd: project, env: cleanNpmEnv(kNpmEnv) });
        servers.push(again);
        await again.waitFor(/streamfn listening on/);
        await again.waitFor(/"fn":"average"[^\n]*"cached":true[^\n]*"msg":"deployed"/);
        await again.stop();
      });
    });
  });

  it("does what docs/getting-started.md says, command by command", async () => {
    const work = join(tmp, "guide");
    await mkdir(work);
    await copyFile(tarball, join(work, packed.filename));
    const guide = shBlocks(await readFile(join(kRepo, "docs/getting-started.md"), "utf8"));
    assert.ok(guide.filter((b) => !b.marks.skip).length >= 5, "the guide has commands to run");
    const port = await freePort();
    const env = cleanNpmEnv({ ...kNpmEnv, PORT: String(port), STREAMFN_URL: `http://127.0.0.1:${port}` });
    const done = await runGuide(guide, { cwd: work, env, timeoutMs: 2 * kMinutes });
    servers.push(...done.background);
    await done.stop();
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** `npx --package <tarball>` installs into npm's cache: drop the installs of our temp tarballs. */
async function removeNpxInstallsOf(dir: string): Promise<void> {
  const cache = (await run("npm", ["config", "get", "cache"], { env: cleanNpmEnv() })).stdout.trim();
  if (!cache) return;
  const npxDir = join(cache, "_npx");
  let entries: string[];
  try {
    entries = await readdir(npxDir);
  } catch {
    return;
  }
  for (const entry of entries) {
    try {
      const pkg = JSON.parse(await readFile(join(npxDir, entry, "package.json"), "utf8")) as { dependencies?: Record<string, string> };
      const spec = pkg.dependencies?.streamfn;
      if (spec?.startsWith("file:") && resolve(npxDir, entry, spec.slice(5)).startsWith(dir)) {
        await rm(join(npxDir, entry), { recursive: true, force: true });
      }
    } catch {
      // not an npx install of ours
    }
  }
}
