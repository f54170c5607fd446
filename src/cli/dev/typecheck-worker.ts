import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, isAbsolute, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parentPort } from "node:worker_threads";
import type * as TS from "typescript";

/** Asks for one check of the functions in `dir`, rooted at `files` (the top-level files). */
export interface CheckRequest {
  dir: string;
  files: string[];
  cwd: string;
}

export type CheckReply =
  | { kind: "missing"; tried: string[] }
  | { kind: "result"; lines: string[]; errors: number; tsconfig: string | undefined }
  | { kind: "crash"; message: string };

/** Our own public types, for `import "streamfn"` in a project that does not have the package installed. */
const kApiTypes = fileURLToPath(new URL("../../api/index.d.ts", import.meta.url));

let ts: typeof TS | undefined;
let previous: TS.Program | undefined;

function loadTypeScript(req: CheckRequest): typeof TS | undefined {
  for (const from of [req.dir, req.cwd]) {
    try {
      return createRequire(join(from, "noop.js"))("typescript") as typeof TS;
    } catch {
      // Not installed there; try the next place.
    }
  }
  return undefined;
}

function resolves(pkg: string, from: string): boolean {
  try {
    createRequire(join(from, "noop.js")).resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

function check(req: CheckRequest): CheckReply {
  ts ??= loadTypeScript(req);
  const compiler = ts;
  if (!compiler) return { kind: "missing", tried: [req.dir, req.cwd] };
  const tsconfig = compiler.findConfigFile(req.dir, compiler.sys.fileExists, "tsconfig.json");
  let options: TS.CompilerOptions;
  if (tsconfig) {
    const read = compiler.readConfigFile(tsconfig, compiler.sys.readFile);
    const parsed = compiler.parseJsonConfigFileContent(read.config ?? {}, compiler.sys, dirname(tsconfig), undefined, tsconfig);
    options = parsed.options;
  } else {
    // Strict, and resolving imports the way the bundler does (with or without extensions).
    options = {
      strict: true,
      target: compiler.ScriptTarget.ES2022,
      module: compiler.ModuleKind.ESNext,
      moduleResolution: compiler.ModuleResolutionKind.Bundler,
      allowImportingTsExtensions: true,
      skipLibCheck: true,
      esModuleInterop: true,
    };
  }
  options = { ...options, noEmit: true };
  if (!options.paths?.streamfn && !resolves("streamfn", req.dir) && existsSync(kApiTypes)) {
    options.paths = { ...options.paths, streamfn: [kApiTypes] };
  }
  const host = compiler.createCompilerHost(options);
  const program = compiler.createProgram({ rootNames: req.files, options, host, oldProgram: previous });
  previous = program;
  const diagnostics = compiler.getPreEmitDiagnostics(program).filter((d) => d.category === compiler.DiagnosticCategory.Error);
  const shownPath = (p: string): string => {
    const rel = relative(req.cwd, p);
    return rel.startsWith("..") || isAbsolute(rel) ? p : rel;
  };
  const lines = diagnostics.map((d) => {
    const message = compiler.flattenDiagnosticMessageText(d.messageText, " ");
    if (!d.file || d.start === undefined) return `error TS${d.code}: ${message}`;
    const { line, character } = d.file.getLineAndCharacterOfPosition(d.start);
    return `${shownPath(d.file.fileName)}:${line + 1}:${character + 1} error TS${d.code}: ${message}`;
  });
  return { kind: "result", lines, errors: diagnostics.length, tsconfig: tsconfig && shownPath(tsconfig) };
}

parentPort!.on("message", (req: CheckRequest) => {
  let reply: CheckReply;
  try {
    reply = check(req);
  } catch (err) {
    reply = { kind: "crash", message: err instanceof Error ? err.message : String(err) };
  }
  parentPort!.postMessage(reply);
});
