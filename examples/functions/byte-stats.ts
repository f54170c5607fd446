import { defineStreamFunction } from "streamfn";

// Binary events (WebSocket binary frames) arrive as Uint8Array. Reports each chunk's size and
// a running checksum, and the totals at the end.
export default defineStreamFunction<Uint8Array, unknown>({
  async *handler(chunks) {
    let bytes = 0;
    let checksum = 0;
    for await (const chunk of chunks) {
      if (!(chunk instanceof Uint8Array)) throw new TypeError("byte-stats takes binary frames only");
      bytes += chunk.byteLength;
      for (let i = 0; i < chunk.byteLength; i++) checksum = (checksum + chunk[i]!) % 65_521;
      yield { chunk: chunk.byteLength, bytes, checksum };
    }
    yield { total: { bytes, checksum } };
  },
});
