/** What a LineReader hands out. */
export interface LineHandler {
  /**
   * One complete line, without its `\n` (and `\r`). `bytes` is its UTF-8 length; `lineNo`
   * counts from 1; `raw` is the line's bytes, a view valid only during the call.
   */
  line(text: string, bytes: number, lineNo: number, raw: Uint8Array): void;
  /** A line longer than the limit. Its bytes were counted, never kept. */
  tooLong(bytes: number, lineNo: number): void;
  /** Input ended and every line was handed out. */
  finished(): void;
}

/**
 * Splits a byte stream into newline-delimited lines (NDJSON), decoding each line once.
 *
 * Memory stays bounded: a line over `maxLineBytes` is counted and skipped, never buffered,
 * and at most one unread chunk is kept while paused. Pausing works mid-chunk, so a producer
 * that is told to wait stops after the line that filled the stream's inbox, not at the end
 * of a chunk that may hold thousands more.
 */
export class LineReader {
  readonly #max: number;
  readonly #handler: LineHandler;
  /** Pieces of a line that spans chunks. */
  #parts: Buffer[] = [];
  #partBytes = 0;
  /** Bytes of an over-long line being skipped, or -1. */
  #skipping = -1;
  /** What is left of a chunk after a pause. */
  #rest: Buffer | undefined;
  #lineNo = 0;
  #paused = false;
  #busy = false;
  #ended = false;
  #finished = false;

  constructor(maxLineBytes: number, handler: LineHandler) {
    this.#max = maxLineBytes;
    this.#handler = handler;
  }

  get paused(): boolean {
    return this.#paused;
  }

  /** Feeds a chunk. Returns false when the reader paused and kept a remainder: stop the source until resume() returns true. */
  push(chunk: Buffer): boolean {
    if (this.#rest) {
      // The source delivered past a pause; keep order by queueing behind the remainder.
      this.#rest = Buffer.concat([this.#rest, chunk]);
      return false;
    }
    return this.#process(chunk);
  }

  pause(): void {
    this.#paused = true;
  }

  /** Continues after a pause. Returns true when nothing is left over (the source may flow again). */
  resume(): boolean {
    this.#paused = false;
    // Called from inside a line callback (the router resumes on end of input): the running loop goes on.
    if (this.#busy) return true;
    const rest = this.#rest;
    if (rest) {
      this.#rest = undefined;
      if (!this.#process(rest)) return false;
    }
    if (this.#ended) this.#finish();
    return true;
  }

  /** The input ended; a last line without a newline still counts. */
  end(): void {
    this.#ended = true;
    if (!this.#rest && !this.#busy) this.#finish();
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#skipping >= 0) {
      this.#handler.tooLong(this.#skipping, ++this.#lineNo);
      this.#skipping = -1;
    } else if (this.#partBytes > 0) {
      const buf = Buffer.concat(this.#parts, this.#partBytes);
      this.#parts = [];
      this.#partBytes = 0;
      this.#emit(buf, 0, buf.length);
    }
    this.#handler.finished();
  }

  #process(chunk: Buffer): boolean {
    this.#busy = true;
    try {
      let pos = 0;
      const len = chunk.length;
      while (pos < len) {
        if (this.#paused) {
          this.#rest = chunk.subarray(pos);
          return false;
        }
        const nl = chunk.indexOf(10, pos);
        if (nl === -1) {
          this.#carry(chunk, pos, len);
          break;
        }
        if (this.#skipping >= 0) {
          const total = this.#skipping + (nl - pos);
          this.#skipping = -1;
          this.#handler.tooLong(total, ++this.#lineNo);
        } else if (this.#partBytes > 0) {
          this.#carry(chunk, pos, nl);
          if (this.#skipping >= 0) {
            const total = this.#skipping;
            this.#skipping = -1;
            this.#handler.tooLong(total, ++this.#lineNo);
          } else {
            const buf = Buffer.concat(this.#parts, this.#partBytes);
            this.#parts = [];
            this.#partBytes = 0;
            this.#emit(buf, 0, buf.length);
          }
        } else {
          this.#emit(chunk, pos, nl);
        }
        pos = nl + 1;
      }
      return true;
    } finally {
      this.#busy = false;
    }
  }

  /** Keeps part of a line that continues in the next chunk, or only counts it once it is too long. */
  #carry(chunk: Buffer, start: number, end: number): void {
    const n = end - start;
    if (this.#skipping >= 0) {
      this.#skipping += n;
      return;
    }
    if (this.#partBytes + n > this.#max + 1) {
      // +1: a trailing `\r` is not part of the line.
      this.#skipping = this.#partBytes + n;
      this.#parts = [];
      this.#partBytes = 0;
      return;
    }
    if (n > 0) {
      this.#parts.push(chunk.subarray(start, end));
      this.#partBytes += n;
    }
  }

  #emit(buf: Buffer, start: number, end: number): void {
    const lineNo = ++this.#lineNo;
    if (end > start && buf[end - 1] === 13) end--;
    const bytes = end - start;
    if (bytes === 0) return;
    if (bytes > this.#max) {
      this.#handler.tooLong(bytes, lineNo);
      return;
    }
    this.#handler.line(buf.toString("utf8", start, end), bytes, lineNo, buf.subarray(start, end));
  }
}
