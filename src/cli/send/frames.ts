import { StreamfnError } from "../../api/errors.js";

export type FrameFormat = "jpeg" | "png";

/** A frame that grows past this without ending is not a frame: the pipe is not what we asked for. */
const kMaxFrameBytes = 64 * 1024 * 1024;

/**
 * Cuts ffmpeg's image2pipe output (images back to back) into single images as bytes arrive,
 * by reading the formats' own structure: JPEG marker segments up to the end-of-image marker,
 * PNG chunks up to IEND. Holds at most one unfinished image.
 */
export class FrameSplitter {
  readonly #format: FrameFormat;
  #buf = Buffer.alloc(64 * 1024);
  #len = 0;
  /** Where the JPEG entropy-data scan resumes for the image at the front (0: from its header). */
  #resume = 0;

  constructor(format: FrameFormat) {
    this.#format = format;
  }

  push(chunk: Uint8Array): Uint8Array[] {
    this.#append(chunk);
    const frames: Uint8Array[] = [];
    for (;;) {
      const end = this.#format === "jpeg" ? this.#jpegEnd() : this.#pngEnd();
      if (end < 0) break;
      frames.push(new Uint8Array(this.#buf.subarray(0, end)));
      this.#buf.copyWithin(0, end, this.#len);
      this.#len -= end;
      this.#resume = 0;
    }
    if (this.#len > kMaxFrameBytes) {
      throw new StreamfnError("INVALID_REQUEST", `ffmpeg sent more than ${kMaxFrameBytes} bytes without a complete ${this.#format} frame`);
    }
    return frames;
  }

  /** Bytes of an unfinished image left over at the end. */
  get pending(): number {
    return this.#len;
  }

  #append(chunk: Uint8Array): void {
    if (this.#len + chunk.byteLength > this.#buf.byteLength) {
      const grown = Buffer.alloc(Math.max(this.#buf.byteLength * 2, this.#len + chunk.byteLength));
      this.#buf.copy(grown, 0, 0, this.#len);
      this.#buf = grown;
    }
    this.#buf.set(chunk, this.#len);
    this.#len += chunk.byteLength;
  }

  /** The length of the complete JPEG at the front, or -1 while it is incomplete. */
  #jpegEnd(): number {
    const n = this.#len;
    // Only the filled part: past it lie stale bytes of earlier images.
    const b = this.#buf.subarray(0, n);
    if (n < 2) return -1;
    if (b[0] !== 0xff || b[1] !== 0xd8) throw new StreamfnError("INVALID_REQUEST", "ffmpeg's output is not a sequence of JPEG images");
    let pos = this.#resume || 2;
    for (;;) {
      if (this.#resume === 0) {
        // Marker segments: FF xx, then a 2-byte length, up to start-of-scan.
        if (pos + 4 > n) return -1;
        if (b[pos] !== 0xff) throw new StreamfnError("INVALID_REQUEST", `broken JPEG from ffmpeg (no marker at byte ${pos})`);
        const marker = b[pos + 1]!;
        if (marker === 0xd9) return pos + 2;
        if (marker === 0xff) {
          pos++;
          continue;
        }
        const segment = b.readUInt16BE(pos + 2);
        if (pos + 2 + segment > n) return -1;
        pos += 2 + segment;
        if (marker === 0xda) this.#resume = pos;
        continue;
      }
      // Entropy-coded data: FF is followed by 00 (a stuffed byte) or a restart marker inside it;
      // anything else is the next marker.
      pos = this.#resume;
      for (;;) {
        const ff = b.indexOf(0xff, pos);
        if (ff < 0 || ff + 1 >= n) {
          this.#resume = ff < 0 ? n : ff;
          return -1;
        }
        const next = b[ff + 1]!;
        if (next === 0x00 || (next >= 0xd0 && next <= 0xd7)) {
          pos = ff + 2;
          continue;
        }
        if (next === 0xd9) return ff + 2;
        // Another segment (progressive JPEGs have several scans).
        this.#resume = 0;
        pos = ff;
        break;
      }
    }
  }

  /** The length of the complete PNG at the front, or -1 while it is incomplete. */
  #pngEnd(): number {
    const n = this.#len;
    const b = this.#buf.subarray(0, n);
    if (n < 8) return -1;
    if (b.readUInt32BE(0) !== 0x89504e47 || b.readUInt32BE(4) !== 0x0d0a1a0a) {
      throw new StreamfnError("INVALID_REQUEST", "ffmpeg's output is not a sequence of PNG images");
    }
    let pos = 8;
    for (;;) {
      if (pos + 8 > n) return -1;
      const length = b.readUInt32BE(pos);
      const end = pos + 12 + length;
      if (b.toString("latin1", pos + 4, pos + 8) === "IEND") return end <= n ? end : -1;
      if (end > n) return -1;
      pos = end;
    }
  }
}
