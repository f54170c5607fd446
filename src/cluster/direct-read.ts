import type { JetStreamManager, StoredMsg } from "@nats-io/jetstream";
import { clusterError } from "./nats-errors.js";

/**
 * Reads a subject's messages in stream order with direct get (ADR-31, `next_by_subj` from a
 * start sequence): no consumer is created, so reading a stream's events or outputs costs the
 * server nothing that outlives the read. Servers before 2.11 have no batch direct get, so this
 * asks for one message per request.
 */
export async function* readSubject(jsm: JetStreamManager, stream: string, subject: string, afterSeq = 0): AsyncGenerator<StoredMsg> {
  let seq = afterSeq;
  for (;;) {
    let m: StoredMsg | null;
    try {
      m = await jsm.direct.getMessage(stream, { seq: seq + 1, next_by_subj: subject });
    } catch (err) {
      throw clusterError(`cannot read ${subject} from ${stream}`, err);
    }
    if (m === null) return;
    seq = m.seq;
    yield m;
  }
}

/** The last message on a subject, or null when it has none. */
export async function lastOnSubject(jsm: JetStreamManager, stream: string, subject: string): Promise<StoredMsg | null> {
  try {
    return await jsm.direct.getMessage(stream, { last_by_subj: subject });
  } catch (err) {
    throw clusterError(`cannot read the last message of ${subject} from ${stream}`, err);
  }
}
