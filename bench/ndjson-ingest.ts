// Server CPU per event for events posted over HTTP as NDJSON batches (250 of the load
// benchmark's 1 KB JSON events a request), read from the server process's /proc counters.
// Usage: npm run build && node dist/bench/ndjson-ingest.js [--root <checkout>] [--function echo|echo-inline] [--rounds N]
// --root serves another built checkout's dist (say, a worktree of the commit before a change).
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { jsonPayload } from "./load.js";
import { median } from "./stats.js";

const { values } = parseArgs({
  options: {
    root: { type: "string", default: fileURLToPath(new URL("../../", import.meta.url)) },
    function: { type: "string", default: "echo" },
    rounds: { type: "string", default: "5" },
  },
});
const root = values.root!;
const fn = values.function!;
const rounds = Number(values.rounds);
const kBatch = 250; // the default inboxLimit is 256: a batch must fit the stream's inbox
const kPosts = 80;

const server = spawn(process.execPath, [join(root, "dist/src/cli/main.js"), "serve", join(root, "bench/functions"), "--port", "0"], {
  stdio: ["ignore", "pipe", "ignore"],
});
process.on("exit", () => server.kill());
const url = await new Promise<string>((resolve, reject) => {
  let out = "";
  server.stdout!.on("data", (d: Buffer) => {
    out += d.toString();
    const m = /listening on (http:\/\/\S+) \(/.exec(out);
    if (m) resolve(m[1]!);
  });
  server.once("exit", (code) => reject(new Error(`the server exited (${code}) before listening`)));
});
server.stdout!.resume();

/** The server's CPU time so far, in ms (user + system, at the kernel's 100 Hz tick). */
function cpuMs(): number {
  const fields = readFileSync(`/proc/${server.pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

const frame = jsonPayload().frame.toString();
const body = Array.from({ length: kBatch }, () => frame).join("\n") + "\n";

async function stream(id: string): Promise<void> {
  const base = `${url}/v1/functions/${fn}/streams/${id}`;
  for (let i = 0; i < kPosts; i++) {
    for (;;) {
      const res = await fetch(`${base}/events`, { method: "POST", headers: { "content-type": "application/x-ndjson" }, body });
      const text = await res.text();
      if (res.status === 202) break;
      // The handler is behind: the batch was refused whole; wait as a producer would.
      if (res.status !== 429) throw new Error(`POST ${base}/events: ${res.status} ${text}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  await fetch(`${base}/end`, { method: "POST" });
}

await stream("warm-up");
const perEvent: number[] = [];
for (let r = 0; r < rounds; r++) {
  const before = cpuMs();
  await stream(`round-${r}`);
  await new Promise((resolve) => setTimeout(resolve, 300)); // the handler's last events
  perEvent.push(((cpuMs() - before) * 1000) / (kBatch * kPosts));
  console.log(`  round ${r + 1}/${rounds}: ${perEvent.at(-1)!.toFixed(1)} µs/event`);
}
console.log(`${fn} (${root}): server CPU per event over NDJSON batches, median of ${rounds} rounds of ${kBatch * kPosts} events: ${median(perEvent).toFixed(1)} µs`);
server.kill();
