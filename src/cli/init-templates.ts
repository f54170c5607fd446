// The files `streamfn init` writes: a project whose function, test, type check and server work
// as soon as `npm install` has run.

/** Versions the scaffold's devDependencies pin: known to work together on Node 20. */
export const kScaffoldDevDependencies = {
  "@types/node": "20.19.43",
  tsx: "4.23.15",
  typescript: "5.9.3",
} as const;

export const kFunctionName = "average";

export interface ScaffoldInput {
  /** The npm package name (from the directory name). */
  packageName: string;
  /** How the project depends on streamfn: `file:…` or a version range. */
  streamfnSpec: string;
}

/** Relative path → content. */
export function scaffoldFiles(input: ScaffoldInput): Record<string, string> {
  return {
    "package.json": packageJson(input),
    "tsconfig.json": kTsconfig,
    ".gitignore": "node_modules/\n.streamfn/\n",
    [`functions/${kFunctionName}.ts`]: kFunction,
    [`test/${kFunctionName}.test.ts`]: kTest,
    "events.ndjson": '{"value":3}\n{"value":5}\n{"value":5}\n',
    "README.md": readme(input.packageName),
  };
}

function packageJson({ packageName, streamfnSpec }: ScaffoldInput): string {
  const pkg = {
    name: packageName,
    version: "0.1.0",
    private: true,
    type: "module",
    scripts: {
      start: "streamfn serve functions",
      dev: "streamfn dev functions",
      test: "node --import tsx --test test/*.test.ts",
      typecheck: "tsc --noEmit",
    },
    dependencies: { streamfn: streamfnSpec },
    devDependencies: kScaffoldDevDependencies,
    // esbuild's postinstall only swaps its launcher for the native binary; streamfn calls
    // esbuild's JS API, which finds the binary without it. Reviewed, so npm does not ask.
    allowScripts: { esbuild: false },
  };
  return `${JSON.stringify(pkg, null, 2)}\n`;
}

const kTsconfig = `{
  // For the editor and \`npm run typecheck\`: streamfn bundles functions itself and tests run
  // through tsx, so nothing is emitted.
  "compilerOptions": {
    "target": "ES2022",
    "module": "NodeNext",
    "moduleResolution": "NodeNext",
    "lib": ["ES2023"],
    "types": ["node"],
    "strict": true,
    "noEmit": true,
    "allowImportingTsExtensions": true,
    "verbatimModuleSyntax": true,
    "skipLibCheck": true
  },
  "include": ["functions", "test"]
}
`;

const kFunction = `import { defineStreamFunction } from "streamfn";

/** One event: a numeric reading, e.g. {"value": 21.5}. */
export interface Reading {
  value: number;
}

/** Decimals of the averages this function reports. */
const kDecimals = 2;

const round = (n: number): number => Number(n.toFixed(kDecimals));

// One stream is one series of readings. Every reading gets the running average back at once;
// when the stream ends (the producer ends it, or 5 s pass without a reading) a summary follows.
// The state is plain local variables: each stream has its own handler invocation.
export default defineStreamFunction<Reading>({
  idleTimeoutMs: 5_000,
  async *handler(readings, ctx) {
    let count = 0;
    let sum = 0;
    let min = Infinity;
    let max = -Infinity;
    for await (const reading of readings) {
      if (typeof reading?.value !== "number") {
        ctx.log.warn("skipping an event without a numeric value:", reading);
        continue;
      }
      count++;
      sum += reading.value;
      min = Math.min(min, reading.value);
      max = Math.max(max, reading.value);
      yield { seq: ctx.event.seq, value: reading.value, average: round(sum / count) };
    }
    // The loop ends when the stream's input does; ctx.endReason says why.
    yield {
      summary: count === 0 ? { count } : { count, average: round(sum / count), min, max },
      endReason: ctx.endReason,
    };
  },
});
`;

const kTest = `import { strict as assert } from "node:assert";
import { test } from "node:test";
import { runStream } from "streamfn/testing";
import average, { type Reading } from "../functions/${kFunctionName}.ts";

// runStream drives the handler in-process with the same iterator the server uses.

test("answers every reading with the running average", async () => {
  const outputs = await runStream(average, [{ value: 3 }, { value: 5 }, { value: 5 }]);
  assert.deepEqual(outputs.slice(0, 3), [
    { seq: 1, value: 3, average: 3 },
    { seq: 2, value: 5, average: 4 },
    { seq: 3, value: 5, average: 4.33 },
  ]);
});

test("ends with a summary that says why the stream ended", async () => {
  const outputs = await runStream(average, [{ value: 2 }, { value: 4 }], { endReason: "idle" });
  assert.deepEqual(outputs.at(-1), { summary: { count: 2, average: 3, min: 2, max: 4 }, endReason: "idle" });
});

test("skips events without a numeric value", async () => {
  // Events arrive as JSON from producers: nothing guarantees their shape.
  const malformed = JSON.parse('{"value":"high"}') as Reading;
  const outputs = await runStream(average, [malformed, { value: 1 }]);
  assert.deepEqual(outputs, [
    { seq: 2, value: 1, average: 1 },
    { summary: { count: 1, average: 1, min: 1, max: 1 }, endReason: "end" },
  ]);
});
`;

function readme(name: string): string {
  return `# ${name}

Stream functions served by [streamfn](https://www.npmjs.com/package/streamfn). One file in
\`functions/\` is one function; its file name is the function's name.

\`\`\`sh
npm test                                  # the tests in test/ (node:test, through tsx)
npm run typecheck                         # TypeScript, as the editor sees it
npm start                                 # serve functions/ on http://127.0.0.1:8080 (PORT=… to change)
npx streamfn send ${kFunctionName} events.ndjson      # stream events.ndjson to it, print its outputs
\`\`\`

\`npm start\` redeploys a function when its file changes; streams already running finish on
the version they started on. The server keeps its bundles in \`functions/.streamfn/\`
(git-ignored).
`;
}
