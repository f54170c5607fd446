// A minimal cluster worker in a process of its own, for tests that kill or pause an owner:
// it pulls one function's work items, claims and fences each stream, renews its leases, and
// writes outputs when told on stdin. Every step is reported as one JSON line on stdout.
//
//   node cluster-worker-child.js <nats-url> <prefix> <fn> <worker> <lease-ms> <slots>
import { createInterface } from "node:readline";
import { StreamfnError } from "../../src/api/errors.js";
import { openCluster } from "../../src/cluster/open-cluster.js";
import type { OutputWriter } from "../../src/cluster/output-log.js";
import type { WorkItem } from "../../src/cluster/work-queue.js";

const [url, prefix, fn, worker, leaseMs, slots] = process.argv.slice(2);
const say = (o: object): void => void process.stdout.write(`${JSON.stringify({ worker, ...o })}\n`);

const h = await openCluster({ servers: url!, prefix: prefix!, leaseMs: Number(leaseMs) });
const streams = new Map<string, { item: WorkItem; writer: OutputWriter }>();

await h.work.startLoop({
  fn: fn!,
  slots: Number(slots),
  onItem: (item) => {
    void (async () => {
      const claim = await h.owners.acquire(item.fn, item.streamId, worker!);
      if (!claim) {
        item.drop();
        say({ event: "lost-race", streamId: item.streamId });
        return;
      }
      const writer = await h.outputs.fence(item.fn, item.streamId, { worker: worker!, epoch: claim.epoch });
      streams.set(item.streamId, { item, writer });
      item.keepLease(
        () => h.owners.holds(item.fn, item.streamId, claim),
        () => say({ event: "lease-lost", streamId: item.streamId }),
      );
      say({ event: "owned", streamId: item.streamId, epoch: claim.epoch, redelivered: item.redelivered, delivered: writer.delivered });
    })().catch((err: unknown) => say({ event: "error", message: String(err) }));
  },
});
say({ event: "ready" });

for await (const line of createInterface({ input: process.stdin })) {
  const cmd = JSON.parse(line) as { cmd: "write" | "end"; streamId: string; n?: number };
  const s = streams.get(cmd.streamId);
  if (!s) {
    say({ event: "unknown-stream", streamId: cmd.streamId });
    continue;
  }
  try {
    if (cmd.cmd === "write") {
      await s.writer.write(cmd.n!, JSON.stringify({ from: worker, n: cmd.n }));
      say({ event: "wrote", streamId: cmd.streamId, n: cmd.n });
    } else {
      await s.writer.end(JSON.stringify({ from: worker, end: true }));
      await s.item.done();
      say({ event: "ended", streamId: cmd.streamId });
    }
  } catch (err) {
    if (err instanceof StreamfnError && err.code === "STREAM_FENCED") {
      // Another worker owns the stream now: stop renewing, never ack, forget it.
      s.item.drop();
      streams.delete(cmd.streamId);
      say({ event: "dropped", streamId: cmd.streamId, code: err.code });
    } else say({ event: "error", message: String(err) });
  }
}
