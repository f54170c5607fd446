// The floor: the same handler, called in this process through the same iterator and driver
// the instances use (what `runStream` uses), with no sockets, threads or router in between.
// Whatever the served path costs above this is the platform's overhead.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { StreamFunction } from "../src/api/types.js";
import { bundleFunction } from "../src/registry/bundler.js";
import { preciseNow } from "../src/runtime/clock.js";
import { StreamRun } from "../src/runtime/stream-driver.js";
import type { FlowResult } from "./load.js";

/** Bundles a function file exactly as the registry does and imports it here. */
export async function loadFunction(file: string, name: string): Promise<StreamFunction> {
  const dir = await mkdtemp(join(tmpdir(), "streamfn-bench-floor-"));
  try {
    const bundle = await bundleFunction(file, name, dir);
    const mod = (await import(pathToFileURL(bundle.path).href)) as { default: StreamFunction };
    return mod.default;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const kQuietLog = { info() {}, warn() {}, error() {} };

/**
 * `streams` concurrent in-process streams, each with one event in flight: the next event is
 * pushed as soon as the previous one's output is yielded. `event` is the already-parsed
 * payload (parsing is the platform's work, so it is not in the floor).
 */
export async function runFloor(fn: StreamFunction, streams: number, eventsPerStream: number, event: unknown): Promise<FlowResult> {
  const total = streams * eventsPerStream;
  const latencyUs = new Float64Array(total);
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: streams }, (_, index) => {
      const base = index * eventsPerStream;
      let received = 0;
      let sentAt = 0;
      let run: StreamRun;
      const push = (): void => {
        sentAt = performance.now();
        run.channel.push({ d: event, q: received + 1, t: preciseNow() });
      };
      const sink = {
        output(): void {
          latencyUs[base + received] = (performance.now() - sentAt) * 1000;
          received++;
          if (received < eventsPerStream) push();
          else run.channel.end("end");
        },
        pulled(): void {},
      };
      run = new StreamRun("floor", `floor-${index}`, sink, kQuietLog);
      push();
      return run.drive(fn, sink);
    }),
  );
  return { events: total, wallMs: performance.now() - t0, latencyUs };
}
