/** An FLV byte stream (ffmpeg `-f flv pipe:1`) cut into tags: header first, then tag + PreviousTagSize, repeated. */
export interface FlvTag {
  type: number;
  /** Milliseconds (24-bit timestamp plus the extension byte). */
  timestamp: number;
  data: Buffer;
}

const MAX_TAG = 16 * 1024 * 1024;

export class FlvDemuxer {
  #buf: Buffer = Buffer.alloc(0);
  #headerDone = false;

  /** Whole tags found so far; throws on bytes that are not FLV (the caller drops that source). */
  push(d: Buffer): FlvTag[] {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, d]) : d;
    const out: FlvTag[] = [];
    if (!this.#headerDone) {
      if (this.#buf.length < 13) return out;
      if (this.#buf.toString("latin1", 0, 3) !== "FLV") throw new Error("not an FLV stream");
      const skip = this.#buf.readUInt32BE(5) + 4;
      if (this.#buf.length < skip) return out;
      this.#buf = this.#buf.subarray(skip);
      this.#headerDone = true;
    }
    let off = 0;
    while (this.#buf.length - off >= 11) {
      const size = this.#buf.readUIntBE(off + 1, 3);
      if (size > MAX_TAG) throw new Error(`FLV tag of ${size} bytes`);
      if (this.#buf.length - off < 11 + size + 4) break;
      const timestamp = (this.#buf.readUIntBE(off + 4, 3) | ((this.#buf[off + 7] ?? 0) << 24)) >>> 0;
      // Copied: the frame outlives this chunk, and a subarray would pin the whole read buffer.
      const data = Buffer.from(this.#buf.subarray(off + 11, off + 11 + size));
      out.push({ type: (this.#buf[off] ?? 0) & 0x1f, timestamp, data });
      off += 11 + size + 4;
    }
    this.#buf = this.#buf.subarray(off);
    return out;
  }
}
