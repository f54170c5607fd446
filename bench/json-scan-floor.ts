// What a scan that judges a JSON envelope without parsing it (src/gateway/envelope-scan.ts)
// can save at best: it has to look at every character at least once, so this measures that
// lower bound (a loop that reads each char of the string, or each byte of the frame, and does
// nothing else) against JSON.parse of the same text. Where the bound alone costs as much as
// the parse, no scan written in JavaScript can win.
//
//   npm run build && node dist/bench/json-scan-floor.js
import { jsonPayload } from "./load.js";
import { median } from "./stats.js";

const kIterations = 100_000;
const kRuns = 7;

function nsPer(fn: () => number): number {
  let sink = 0;
  const t = process.hrtime.bigint();
  for (let i = 0; i < kIterations; i++) sink += fn();
  const ns = Number(process.hrtime.bigint() - t) / kIterations;
  if (sink === -1) console.log(sink); // keeps the work observable
  return ns;
}

function measure(label: string, text: string): void {
  const bytes = Buffer.from(text);
  const cases: [string, () => number][] = [
    ["JSON.parse", () => (JSON.parse(text) as object) === null ? 0 : 1],
    [
      "read every char (charCodeAt)",
      () => {
        let k = 0;
        for (let i = 0; i < text.length; i++) k += text.charCodeAt(i);
        return k;
      },
    ],
    [
      "read every byte (of the frame's Buffer)",
      () => {
        let k = 0;
        for (let i = 0; i < bytes.length; i++) k += bytes[i]!;
        return k;
      },
    ],
  ];
  const runs = new Map<string, number[]>(cases.map(([name]) => [name, []]));
  for (let r = 0; r < kRuns; r++) for (const [name, fn] of cases) runs.get(name)!.push(nsPer(fn));
  const parse = median(runs.get("JSON.parse")!);
  console.log(`${label} (${bytes.length} bytes), medians of ${kRuns} runs × ${kIterations}:`);
  for (const [name] of cases) {
    const m = median(runs.get(name)!);
    console.log(`  ${name.padEnd(42)} ${(m / 1000).toFixed(2)} µs  (${(m / parse).toFixed(2)}× JSON.parse)`);
  }
}

measure("the load benchmark's event", jsonPayload().frame.toString("utf8"));
measure("a text-heavy event", JSON.stringify({ data: { note: "x".repeat(860) } }));
