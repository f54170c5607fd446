import type { JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";

/**
 * The keys of a KV bucket (deleted ones included: their tombstones are records too), read in one
 * request from the subject counts of the bucket's stream. `kv.keys()` runs an ordered consumer
 * instead, which on the server this was built against can wait forever once keys were deleted
 * or expired (nats-server#3481), and it hung the gateway's /v1/status after a worker died.
 */
export async function bucketKeys(kv: KV): Promise<string[]> {
  // The client's Bucket class, behind its KV interface: what it binds to.
  const b = kv as unknown as { jsm: JetStreamManager; stream: string; prefix: string };
  const info = await b.jsm.streams.info(b.stream, { subjects_filter: `${b.prefix}.>` });
  const cut = b.prefix.length + 1;
  return Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(cut));
}
