/**
 * Outputs a thread sandbox produced and has not posted yet, kept in memory the router can read.
 *
 * The sandbox's outbox batches outputs into one thread message per turn of its event loop; a
 * handler that then blocks the loop (a CPU loop) would take the batch down with the instance.
 * Each output is also written here, and the journal is cleared whenever a batch is posted, so
 * when the router gives up on the instance it reads what never arrived and delivers it. Writing
 * a record costs a copy of its bytes and no thread wake-up, which keeps batching cheap.
 *
 * Layout: an Int32 at byte 0 is the end of the last complete record (stored last, with
 * Atomics, so a reader never sees a half-written one). Records from byte 8:
 * s u32, n u32, t f64, kind u8 (0 JSON text, 1 bytes), length u32, then the payload.
 */
const kHeaderBytes = 8;
const kRecordHeaderBytes = 21;

/** The journal's size per thread sandbox; an output that does not fit is posted at once instead. */
export const kJournalBytes = 256 * 1024;

export interface JournalRecord {
  /** The stream's handle. */
  s: number;
  /** The stream's output number as the sandbox counted it (1-based). */
  n: number;
  /** The arrival stamp of the event the handler held. */
  t: number;
  d: string | Uint8Array;
}

const encoder = new TextEncoder();

export class OutputJournal {
  readonly #end: Int32Array;
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  #at = kHeaderBytes;

  constructor(buffer: SharedArrayBuffer) {
    this.#end = new Int32Array(buffer, 0, 1);
    this.#bytes = new Uint8Array(buffer);
    this.#view = new DataView(buffer);
    Atomics.store(this.#end, 0, kHeaderBytes);
  }

  /** Adds one output; false when it does not fit (post the batch, clear, and try again). */
  record(s: number, n: number, t: number, d: string | Uint8Array): boolean {
    const start = this.#at + kRecordHeaderBytes;
    const room = this.#bytes.byteLength - start;
    if (room <= 0) return false;
    let length: number;
    if (typeof d === "string") {
      const { read, written } = encoder.encodeInto(d, this.#bytes.subarray(start));
      if (read < d.length) return false;
      length = written;
    } else {
      if (d.byteLength > room) return false;
      this.#bytes.set(d, start);
      length = d.byteLength;
    }
    const v = this.#view;
    v.setUint32(this.#at, s);
    v.setUint32(this.#at + 4, n);
    v.setFloat64(this.#at + 8, t);
    v.setUint8(this.#at + 16, typeof d === "string" ? 0 : 1);
    v.setUint32(this.#at + 17, length);
    this.#at = start + length;
    Atomics.store(this.#end, 0, this.#at);
    return true;
  }

  /** Everything recorded so far has been posted. */
  clear(): void {
    if (this.#at === kHeaderBytes) return;
    this.#at = kHeaderBytes;
    Atomics.store(this.#end, 0, kHeaderBytes);
  }
}

/** The router's side: the complete records in a journal, oldest first. */
export function readJournal(buffer: SharedArrayBuffer): JournalRecord[] {
  const end = Atomics.load(new Int32Array(buffer, 0, 1), 0);
  const view = new DataView(buffer);
  const bytes = new Uint8Array(buffer);
  const out: JournalRecord[] = [];
  let at = kHeaderBytes;
  while (at + kRecordHeaderBytes <= end) {
    const length = view.getUint32(at + 17);
    const start = at + kRecordHeaderBytes;
    if (start + length > end) break;
    // Copied out of shared memory: the records outlive the sandbox and must not change under us.
    const payload = bytes.slice(start, start + length);
    out.push({
      s: view.getUint32(at),
      n: view.getUint32(at + 4),
      t: view.getFloat64(at + 8),
      d: view.getUint8(at + 16) === 0 ? Buffer.from(payload.buffer).toString("utf8") : payload,
    });
    at = start + length;
  }
  return out;
}
