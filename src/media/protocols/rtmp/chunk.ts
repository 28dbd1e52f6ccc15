/**
 * RTMP chunk stream (RTMP 1.0 spec section 5.3): messages are cut into chunks of at most `chunkSize` bytes and
 * interleaved by chunk stream id. ChunkReader reassembles messages from arbitrary TCP reads; ChunkWriter cuts
 * outgoing messages. Sizes are bounded so a hostile peer cannot make us buffer without limit: the bytes held for
 * partial messages (and a chunk split across reads) are charged to a per-connection limit and to a budget shared
 * by all connections, and going over either is a ChunkError (the connection closes, its bytes are released).
 */

import { release as releaseBytes, retain, Slab } from "../slab.ts";
import { type ByteBudget, free } from "./budget.ts";

export interface RtmpMessage {
  csid: number;
  type: number;
  streamId: number;
  /** Absolute timestamp in ms (deltas already applied). */
  timestamp: number;
  /** From ChunkReader: holds one reference of its slab (slab.ts) that the receiver gives back with
   * `release(payload)` once it has dispatched the message (holders that keep the bytes retain their own). */
  payload: Buffer;
}

export class ChunkError extends Error {}

interface ChunkState {
  timestamp: number;
  /** The last timestamp field (absolute for fmt 0, delta otherwise), reused by fmt 3 as ffmpeg/librtmp do. */
  field: number;
  extended: boolean;
  length: number;
  type: number;
  streamId: number;
  /** The message being reassembled: allocated whole at its first chunk, filled chunk by chunk. */
  payload: Buffer;
  /** Messages above UPFRONT bytes: filled block by block as chunks arrive (a peer's declared length alone must
   * not make us allocate 16 MiB); the last block is filled up to `received` modulo BLOCK. */
  blocks: Buffer[];
  received: number;
  /** Bytes charged to the budgets for this partial message. */
  held: number;
}

const HEADER_SIZES = [11, 7, 3, 0] as const;
/** Basic header (up to 3 bytes) + message header (11) + extended timestamp (4). */
const MAX_HEADER = 18;
const EMPTY = Buffer.alloc(0);
/** Per chunk: plain byte arithmetic (readUIntBE's generic path allocated on every call). */
const u24 = (b: Buffer, p: number): number =>
  ((b[p] as number) << 16) | ((b[p + 1] as number) << 8) | (b[p + 2] as number);
/** Messages up to this size are allocated whole when their first chunk arrives. */
const UPFRONT = 256 * 1024;
/** Larger ones grow by blocks of this size: each its own allocation, above glibc's mmap threshold as the
 * supervisor sets it, so a freed block goes back to the OS at once. */
const BLOCK = 256 * 1024;

export interface ChunkLimits {
  /** Largest message length a header may declare (RTMP's own limit is 16 MiB - 1). */
  maxMessage?: number;
  /** Bytes this reader may hold for partial messages and a split chunk. */
  maxHeld?: number;
  /** The budget shared with other readers. */
  shared?: ByteBudget;
  /** Called when the shared budget takes this reader's bytes back (close the connection). */
  onEvict?: (why: string) => void;
}

const NO_LIMIT = Number.MAX_SAFE_INTEGER;

export class ChunkReader {
  chunkSize = 128;
  /** Both may change during a connection: a publisher that is admitted gets room for keyframes. */
  maxMessage: number;
  maxHeld: number;
  readonly #shared: ByteBudget | undefined;
  readonly #onEvict: ((why: string) => void) | undefined;
  /** Bytes charged to the limits now (partial messages + the carry buffer). */
  #held = 0;
  readonly #states = new Map<number, ChunkState>();
  /** The bytes being parsed (during `push` only). */
  #buf: Buffer = EMPTY;
  #slab = new Slab(256 * 1024);

  constructor(opts: ChunkLimits = {}) {
    this.maxMessage = opts.maxMessage ?? 0xffffff;
    this.maxHeld = opts.maxHeld ?? NO_LIMIT;
    this.#shared = opts.shared;
    this.#onEvict = opts.onEvict;
    this.#shared?.readers.add(this);
  }

  /** The shared budget needs this reader's bytes: everything is released and the owner told. */
  evict(why: string): void {
    this.release();
    this.#onEvict?.(why);
  }

  /**
   * Carve messages from `slab` from now on (an admitted publisher's reader gets a larger, recycling one: see
   * slab.ts and `RtmpMessage.payload`); the previous slab is left to the messages already carved from it.
   */
  useSlab(slab: Slab): void {
    this.#slab.close();
    this.#slab = slab;
  }

  /** Bytes held for partial messages and a split chunk. */
  get held(): number {
    return this.#held;
  }

  setChunkSize(n: number): void {
    if (!(n >= 1 && n <= 0xffffff)) throw new ChunkError(`invalid chunk size ${n}`);
    this.chunkSize = n;
  }

  /** Abort Message (type 2): drop the partial message on that chunk stream. */
  abort(csid: number): void {
    const s = this.#states.get(csid);
    if (s) this.#drop(s);
  }

  /** Give back everything held (the connection is closing); the reader must not be used after. */
  release(): void {
    for (const s of this.#states.values()) this.#drop(s);
    this.#states.clear();
    this.#refund(this.#spare.length);
    free(this.#spare);
    this.#spare = EMPTY;
    this.#carried = 0;
    this.#slab.close();
    this.#shared?.readers.delete(this);
  }

  #drop(s: ChunkState): void {
    this.#refund(s.held);
    s.held = 0;
    s.received = 0;
    // A partial message's bytes (a completed one's are the receiver's: see RtmpMessage.payload).
    if (s.payload !== EMPTY) releaseBytes(s.payload);
    s.payload = EMPTY;
    // Per message: no new array unless a large message's blocks are to be freed.
    if (s.blocks.length > 0) {
      for (const b of s.blocks) free(b);
      s.blocks = [];
    }
  }

  /** Take `n` more bytes from both limits, or throw (nothing taken) when either would be exceeded. */
  #charge(n: number): void {
    if (this.#held + n > this.maxHeld)
      throw new ChunkError(`partial messages would hold more than ${this.maxHeld} bytes on this connection`);
    const shared = this.#shared;
    if (shared) {
      if (shared.used + n > shared.limit && !shared.reclaim(n, this))
        throw new ChunkError(`partial messages of all connections would hold more than ${shared.limit} bytes`);
      shared.used += n;
    }
    this.#held += n;
  }

  #refund(n: number): void {
    this.#held -= n;
    if (this.#shared) this.#shared.used -= n;
  }

  /**
   * Feed bytes; returns the messages completed by them. Throws ChunkError on a protocol violation. `data` is not
   * kept after the call (the socket reads into one reused buffer): a chunk split across reads is carried over
   * in the reader's own buffer.
   */
  push(data: Buffer): RtmpMessage[] {
    const out: RtmpMessage[] = [];
    const old = this.#carried;
    if (old > 0) {
      // Finish the chunk split across reads by copying only the bytes it can need, not the whole read (with
      // 64 KiB reads, copying every read was the reader's main cost); the rest of `data` is parsed in place.
      const take = Math.min(data.length, Math.max(1, MAX_HEADER + this.chunkSize - old));
      this.#buf = this.#carry(data.subarray(0, take), old);
      const pos = this.#parse(out);
      if (pos < old) {
        // Still inside the carried chunk: `take` covers a whole chunk, so all of `data` is in the carry.
        this.#keep(pos);
        if (take === data.length) return out;
        // Cannot happen; stay correct: carry the rest too and parse it all.
        this.#buf = this.#carry(data.subarray(take), this.#carried);
        this.#keep(this.#parse(out));
        return out;
      }
      data = data.subarray(pos - old);
    }
    this.#buf = data;
    this.#keep(this.#parse(out));
    return out;
  }

  /** Bytes of `#spare` holding the start of a chunk that the next read completes. */
  #carried = 0;
  #spare: Buffer = EMPTY;

  /** `#spare[0, at)` followed by `bytes`, in `#spare` (grown when needed), as one view. */
  #carry(bytes: Buffer, at: number): Buffer {
    const need = at + bytes.length;
    if (need > this.#spare.length) {
      // A peer-chosen chunk size makes this as large as a chunk: it counts like a partial message.
      const size = Math.max(need, Math.min(2 * this.#spare.length, need + 64 * 1024), 4096);
      this.#charge(size - this.#spare.length);
      const grown = Buffer.allocUnsafeSlow(size);
      this.#spare.copy(grown, 0, 0, at);
      free(this.#spare);
      this.#spare = grown;
    }
    bytes.copy(this.#spare, at);
    return this.#spare.subarray(0, need);
  }

  /** Keep `#buf[pos..]` (an incomplete chunk) for the next push. */
  #keep(pos: number): void {
    const b = this.#buf;
    this.#buf = EMPTY;
    const rest = b.length - pos;
    if (rest <= 0) {
      this.#carried = 0;
      return;
    }
    if (b.buffer === this.#spare.buffer && b.byteOffset === this.#spare.byteOffset) {
      // Already in the carry: move the tail to its start.
      this.#spare.copy(this.#spare, 0, pos, b.length);
      this.#carried = rest;
      return;
    }
    this.#carried = 0;
    this.#carry(b.subarray(pos), 0);
    this.#carried = rest;
  }

  /** Parse whole chunks of `#buf` from its start; returns the position after the last one. */
  #parse(out: RtmpMessage[]): number {
    let pos = 0;
    for (;;) {
      const r = this.#chunk(pos, out);
      if (r < 0) return pos;
      pos = r;
    }
  }

  /** Parse one chunk at `pos`; returns the position after it, or -1 if more bytes are needed. */
  #chunk(pos: number, out: RtmpMessage[]): number {
    const b = this.#buf;
    if (pos >= b.length) return -1;
    const b0 = b[pos] as number;
    const fmt = b0 >> 6;
    let csid = b0 & 0x3f;
    let p = pos + 1;
    if (csid === 0) {
      if (p + 1 > b.length) return -1;
      csid = 64 + (b[p] as number);
      p += 1;
    } else if (csid === 1) {
      if (p + 2 > b.length) return -1;
      csid = 64 + (b[p] as number) + (b[p + 1] as number) * 256;
      p += 2;
    }
    const hs = HEADER_SIZES[fmt] as number;
    if (p + hs > b.length) return -1;
    let s = this.#states.get(csid);
    const fresh = s === undefined;
    if (!s) {
      if (fmt !== 0) throw new ChunkError(`chunk stream ${csid} starts without a type 0 header`);
      if (this.#states.size >= 64) throw new ChunkError("too many chunk streams");
      s = {
        timestamp: 0,
        field: 0,
        extended: false,
        length: 0,
        type: 0,
        streamId: 0,
        payload: EMPTY,
        blocks: [],
        received: 0,
        held: 0,
      };
    }
    const starting = s.received === 0;
    if (fmt !== 3 && !starting) throw new ChunkError(`new header on chunk stream ${csid} inside a message`);
    let field = s.field;
    let length = s.length;
    let type = s.type;
    let streamId = s.streamId;
    let extended = s.extended;
    if (fmt <= 2) {
      field = u24(b, p);
      extended = field === 0xffffff;
    }
    if (fmt <= 1) {
      length = u24(b, p + 3);
      type = b[p + 6] as number;
    }
    // Plain arithmetic (readUInt32LE's result is a heap number in unoptimised code).
    if (fmt === 0)
      streamId =
        ((b[p + 7] as number) |
          ((b[p + 8] as number) << 8) |
          ((b[p + 9] as number) << 16) |
          ((b[p + 10] as number) << 24)) >>>
        0;
    p += hs;
    if (extended) {
      if (p + 4 > b.length) return -1;
      const ext = b.readUInt32BE(p);
      if (fmt <= 2) field = ext;
      p += 4;
    }
    if (length > this.maxMessage) throw new ChunkError(`message of ${length} bytes exceeds the limit`);
    const size = Math.min(this.chunkSize, length - (starting ? 0 : s.received));
    if (p + size > b.length) return -1;
    // A small message is allocated whole at its first chunk, so its declared length is what it holds; a large
    // one holds the blocks this chunk fills or opens.
    const got = starting ? 0 : s.received;
    const charge =
      length <= UPFRONT
        ? starting
          ? length
          : 0
        : Math.min(Math.ceil((got + size) / BLOCK) * BLOCK, length) - Math.min(Math.ceil(got / BLOCK) * BLOCK, length);
    this.#charge(charge);
    // Commit only now that the whole chunk is here.
    if (starting) s.timestamp = fmt === 0 ? field : s.timestamp + field;
    s.field = field;
    s.length = length;
    s.type = type;
    s.streamId = streamId;
    s.extended = extended;
    if (fresh) this.#states.set(csid, s);
    // Copied once, straight into the message (from a slab: see slab.ts); the read buffer is not kept.
    if (length <= UPFRONT) {
      if (starting) {
        s.payload = this.#slab.take(length);
        retain(s.payload);
      }
      b.copy(s.payload, s.received, p, p + size);
    } else this.#fill(s, b, p, size, length);
    s.held += charge;
    s.received += size;
    if (s.received >= length) {
      const payload = length <= UPFRONT ? s.payload : Buffer.concat(s.blocks, length);
      out.push({ csid, type, streamId, timestamp: s.timestamp >>> 0, payload });
      // The message (and its reference) is the receiver's now: it no longer counts against this connection.
      s.payload = EMPTY;
      this.#drop(s);
      // Set Chunk Size and Abort act on the chunk layer itself, and must apply to the very next chunk.
      if (type === 1) {
        if (payload.length < 4) throw new ChunkError("short Set Chunk Size");
        this.setChunkSize(payload.readUInt32BE(0) & 0x7fffffff);
      } else if (type === 2 && payload.length >= 4) this.abort(payload.readUInt32BE(0));
    }
    return p + size;
  }

  /** Copy `size` bytes of `b` at `p` into the blocks of a large message, opening blocks as needed. */
  #fill(s: ChunkState, b: Buffer, p: number, size: number, length: number): void {
    let at = s.received;
    const end = p + size;
    while (p < end) {
      const i = Math.floor(at / BLOCK);
      if (i === s.blocks.length) s.blocks.push(Buffer.allocUnsafeSlow(Math.min(BLOCK, length - i * BLOCK)));
      const n = b.copy(s.blocks[i] as Buffer, at - i * BLOCK, p, end);
      p += n;
      at += n;
    }
  }
}

function basicHeader(fmt: number, csid: number): Buffer {
  if (csid < 64) return Buffer.from([(fmt << 6) | csid]);
  if (csid < 320) return Buffer.from([fmt << 6, csid - 64]);
  return Buffer.from([(fmt << 6) | 1, (csid - 64) & 0xff, (csid - 64) >> 8]);
}

export class ChunkWriter {
  chunkSize = 128;

  /** One message as a type 0 chunk followed by type 3 continuation chunks. */
  write(m: RtmpMessage): Buffer {
    const ts = m.timestamp >>> 0;
    const ext = ts >= 0xffffff;
    const h = Buffer.alloc(11);
    h.writeUIntBE(ext ? 0xffffff : ts, 0, 3);
    h.writeUIntBE(m.payload.length, 3, 3);
    h[6] = m.type;
    h.writeUInt32LE(m.streamId, 7);
    const extBuf = Buffer.alloc(ext ? 4 : 0);
    if (ext) extBuf.writeUInt32BE(ts);
    const parts: Buffer[] = [basicHeader(0, m.csid), h, extBuf];
    for (let off = 0; off < m.payload.length || off === 0; off += this.chunkSize) {
      if (off > 0) parts.push(basicHeader(3, m.csid), extBuf);
      parts.push(m.payload.subarray(off, off + this.chunkSize));
      if (m.payload.length === 0) break;
    }
    return Buffer.concat(parts);
  }
}
