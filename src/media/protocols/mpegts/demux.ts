/**
 * MPEG-TS -> hub frames (ISO 13818-1): 188-byte packets (resyncing on 0x47 after garbage), PAT and PMT of the
 * first program, PES reassembly per elementary PID (bounded or unbounded length), 33-bit PTS/DTS unwrapped into
 * one continuous millisecond timeline starting at 0, continuity counters (a gap drops the PES it broke and is
 * reported, never thrown). Output frames are exactly what RTMP/FLV ingest writes to the hub:
 *   H.264 (0x1b)  Annex B -> AVCC tags; an AVC sequence header whenever SPS/PPS first appear or change
 *   H.265 (0x24)  enhanced-RTMP 'hvc1' SequenceStart / CodedFrames
 *   AAC   (0x0f)  ADTS -> AudioSpecificConfig sequence header + raw AAC tags, one per ADTS frame, each timed
 *   Opus  (0x06 + registration 'Opus')  control headers stripped -> enhanced-RTMP 'Opus' SequenceStart / CodedFrames
 * Other stream types, and tracks after the first video and the first audio one, are ignored.
 */
import { splitAnnexB } from "../../codecs/annexb.ts";
import { HEVC_NAL, hevcConfigRecord, hevcNalType, isHevcKeyframe } from "../../codecs/hevc.ts";
import type { Frame } from "../../frame.ts";
import { opusConfigFrame, opusHead, opusPacketFrame, opusPacketSamples } from "../flv/ex-audio.ts";
import { exVideoTag, FOURCC_HEVC, VIDEO_PACKET } from "../flv/ex-video.ts";
import { audioFrame, videoFrame } from "../flv/tag.ts";
import { avcConfigFrame, avcConfigRecord, avcNaluFrame } from "../webrtc/avc-tags.ts";
import { AAC_RATES, OPUS_VORBIS_MAPPING, PID_PAT, readTimestamp, STREAM_TYPE, SYNC, TS_PACKET, WRAP } from "./psi.ts";

export interface TsDemuxerOptions {
  /** Malformed input that was skipped (a continuity gap, a bad PES header, an unparsable ADTS frame...). */
  onError?(e: Error): void;
  /** A PES growing past this is dropped (reported); default 16 MiB. At most two PIDs buffer (one video, one audio). */
  maxPesBytes?: number;
}

const EMPTY = Buffer.alloc(0);
/** First allocation for a PES of unbounded length before any was seen (grown by doubling). */
const PES_START = 64 * 1024;

type Codec = "h264" | "h265" | "aac" | "opus";

interface Es {
  codec: Codec;
  /** PES bytes collected since the last PUSI (copied in: the input's buffers are not kept), `size` of them used. */
  buf: Buffer | undefined;
  size: number;
  /** Size of the last PES (the first allocation for the next one when its length is unbounded). */
  hint: number;
  /** Expected PES size (6 + PES_packet_length), 0 when unbounded. */
  expected: number;
  /** A continuity gap broke the PES being collected: drop it at the next PUSI. */
  broken: boolean;
  cc: number;
  /** Opus: channel count from the PMT extension descriptor. */
  channels: number;
  /** Last config emitted (SPS+PPS / VPS+SPS+PPS record, ASC, OpusHead) to notice changes. */
  config?: Buffer;
  /** AAC: bytes of an ADTS frame cut by the PES end, and the time the next frame starts (90 kHz). */
  rest?: Buffer;
  nextTs?: number;
  /** H.264/H.265 parameter sets last seen in the stream. */
  vps?: Buffer;
  sps?: Buffer;
  pps?: Buffer;
}

/** A PSI section being collected on one PID. */
interface Section {
  parts: Buffer[];
  size: number;
  cc: number;
}

export class TsDemuxer {
  #onFrame: (f: Frame) => void;
  #onError: (e: Error) => void;
  #maxPes: number;
  #buf: Buffer = EMPTY;
  #pmtPid = -1;
  #pmtVersion = -1;
  #es = new Map<number, Es>();
  #sections = new Map<number, Section>();
  /** Last unwrapped 90 kHz time seen (any PID) and the time that maps to 0 ms. */
  #last: number | undefined;
  #base: number | undefined;

  constructor(onFrame: (f: Frame) => void, opts: TsDemuxerOptions = {}) {
    this.#onFrame = onFrame;
    this.#onError = opts.onError ?? (() => {});
    this.#maxPes = opts.maxPesBytes ?? 16 * 1024 * 1024;
  }

  push(chunk: Buffer): void {
    const b = this.#buf.length > 0 ? Buffer.concat([this.#buf, chunk]) : chunk;
    let p = 0;
    while (b.length - p >= TS_PACKET) {
      if (b[p] !== SYNC || (b.length - p > TS_PACKET && b[p + TS_PACKET] !== SYNC)) {
        // Lost sync: the next 0x47 that is followed by another one a packet later (or by the end of the input).
        const from = p;
        p++;
        while (p < b.length && !(b[p] === SYNC && (p + TS_PACKET >= b.length || b[p + TS_PACKET] === SYNC))) p++;
        this.#onError(new Error(`MPEG-TS: skipped ${p - from} bytes to resync`));
        continue;
      }
      this.#packet(b, p);
      p += TS_PACKET;
    }
    this.#buf = p === b.length ? EMPTY : Buffer.from(b.subarray(p));
  }

  /** End of input: flush the PES still being collected on every PID. */
  end(): void {
    for (const [pid, es] of this.#es) this.#flush(pid, es);
    this.#buf = EMPTY;
  }

  /** The TS packet at `pk[o..o+188)` (read in place: no view is made of it unless it is PSI). */
  #packet(pk: Buffer, o: number): void {
    const b1 = pk[o + 1] as number;
    if (b1 & 0x80) {
      this.#onError(new Error("MPEG-TS: packet with transport_error_indicator skipped"));
      return;
    }
    const pusi = (b1 & 0x40) !== 0;
    const pid = ((b1 & 0x1f) << 8) | (pk[o + 2] as number);
    const b3 = pk[o + 3] as number;
    const afc = (b3 >> 4) & 3;
    const cc = b3 & 0x0f;
    let p = 4;
    let discontinuity = false;
    if (afc & 2) {
      const len = pk[o + 4] as number;
      if (len > 183) {
        this.#onError(new Error(`MPEG-TS: adaptation field length ${len} on PID ${pid}`));
        return;
      }
      if (len > 0) discontinuity = ((pk[o + 5] as number) & 0x80) !== 0;
      p = 5 + len;
    }
    if (!(afc & 1) || p >= TS_PACKET) return; // no payload
    const start = o + p;
    const end = o + TS_PACKET;
    if (pid === PID_PAT || pid === this.#pmtPid) {
      this.#section(pid, pusi, cc, pk.subarray(start, end));
      return;
    }
    const es = this.#es.get(pid);
    if (!es) return;
    if (es.cc >= 0 && !discontinuity) {
      if (cc === es.cc) return; // a duplicate packet (13818-1 2.4.3.3): ignore
      if (cc !== ((es.cc + 1) & 0x0f)) {
        if (es.size > 0 && !es.broken)
          this.#onError(new Error(`MPEG-TS: continuity gap on PID ${pid} (${es.cc} -> ${cc}); PES dropped`));
        es.broken = true;
      }
    }
    es.cc = cc;
    if (pusi) {
      this.#flush(pid, es);
      es.broken = false;
      if (end - start >= 6 && pk[start] === 0 && pk[start + 1] === 0 && pk[start + 2] === 1) {
        const len = pk.readUInt16BE(start + 4);
        es.expected = len === 0 ? 0 : len + 6;
      } else {
        this.#onError(new Error(`MPEG-TS: PES on PID ${pid} without a start code`));
        es.broken = true;
        return;
      }
    } else if (es.size === 0 || es.broken) return; // joined mid-PES, or dropping this one
    const size = es.size + end - start;
    if (size > this.#maxPes) {
      this.#onError(new Error(`MPEG-TS: PES on PID ${pid} over ${this.#maxPes} bytes dropped`));
      es.buf = undefined;
      es.size = 0;
      es.broken = true;
      return;
    }
    if (!es.buf || size > es.buf.length) {
      // Sized for the whole PES when its length is known, else like the last one, doubling when it grows past.
      const want = es.expected > 0 ? es.expected : es.buf ? 2 * es.buf.length : es.hint;
      const grown = Buffer.allocUnsafe(Math.min(this.#maxPes, Math.max(size, want)));
      if (es.buf) es.buf.copy(grown, 0, 0, es.size);
      es.buf = grown;
    }
    pk.copy(es.buf, es.size, start, end);
    es.size = size;
    if (es.expected > 0 && es.size >= es.expected) this.#flush(pid, es);
  }

  #section(pid: number, pusi: boolean, cc: number, payload: Buffer): void {
    let s = this.#sections.get(pid);
    if (pusi) {
      const pointer = payload[0] as number;
      if (1 + pointer > payload.length) return;
      s = { parts: [payload.subarray(1 + pointer)], size: payload.length - 1 - pointer, cc };
      this.#sections.set(pid, s);
    } else {
      if (!s || cc !== ((s.cc + 1) & 0x0f)) {
        this.#sections.delete(pid);
        return;
      }
      s.parts.push(payload);
      s.size += payload.length;
      s.cc = cc;
    }
    if (s.size < 3) return;
    const b = s.parts.length === 1 ? (s.parts[0] as Buffer) : Buffer.concat(s.parts);
    s.parts = [b];
    const len = 3 + (b.readUInt16BE(1) & 0x0fff);
    if (b.length < len) return;
    this.#sections.delete(pid);
    if (b[0] === 0xff) return; // stuffing
    const sec = b.subarray(0, len);
    try {
      if (pid === PID_PAT && sec[0] === 0x00) this.#pat(sec);
      else if (pid === this.#pmtPid && sec[0] === 0x02) this.#pmt(sec);
    } catch (e) {
      this.#onError(e as Error);
    }
  }

  #pat(sec: Buffer): void {
    if (sec.length < 12) throw new Error("MPEG-TS: PAT too short");
    for (let p = 8; p + 4 <= sec.length - 4; p += 4) {
      const program = sec.readUInt16BE(p);
      const pid = sec.readUInt16BE(p + 2) & 0x1fff;
      if (program === 0) continue; // network PID
      if (pid !== this.#pmtPid) {
        this.#pmtPid = pid;
        this.#pmtVersion = -1;
      }
      return;
    }
  }

  #pmt(sec: Buffer): void {
    if (sec.length < 16) throw new Error("MPEG-TS: PMT too short");
    const version = ((sec[5] as number) >> 1) & 0x1f;
    if (version === this.#pmtVersion) return;
    this.#pmtVersion = version;
    const infoLen = sec.readUInt16BE(10) & 0x0fff;
    const end = sec.length - 4;
    const seen = new Set<number>();
    const kinds = new Set<string>();
    for (let p = 12 + infoLen; p + 5 <= end; ) {
      const type = sec[p] as number;
      const pid = sec.readUInt16BE(p + 1) & 0x1fff;
      const esLen = sec.readUInt16BE(p + 3) & 0x0fff;
      const desc = sec.subarray(p + 5, Math.min(end, p + 5 + esLen));
      p += 5 + esLen;
      let codec: Codec | undefined;
      let channels = 2;
      if (type === STREAM_TYPE.H264) codec = "h264";
      else if (type === STREAM_TYPE.H265) codec = "h265";
      else if (type === STREAM_TYPE.AAC_ADTS) codec = "aac";
      else if (type === STREAM_TYPE.PRIVATE_PES) {
        for (let d = 0; d + 2 <= desc.length; d += 2 + (desc[d + 1] as number)) {
          const tag = desc[d] as number;
          const len = desc[d + 1] as number;
          if (tag === 0x05 && len >= 4 && desc.toString("latin1", d + 2, d + 6) === "Opus") codec = "opus";
          if (tag === 0x7f && len >= 2 && desc[d + 2] === 0x80) {
            const code = desc[d + 3] as number;
            if (code >= 1 && code <= 8) channels = code;
          }
        }
      }
      if (!codec) continue;
      // One video and one audio track (the first of each in the PMT), as a hub stream has: this also bounds what
      // a hostile PMT listing many PIDs can make us buffer.
      const kind = codec === "h264" || codec === "h265" ? "video" : "audio";
      if (kinds.has(kind)) continue;
      kinds.add(kind);
      seen.add(pid);
      const old = this.#es.get(pid);
      if (old && old.codec === codec) continue;
      this.#es.set(pid, {
        codec,
        buf: undefined,
        size: 0,
        hint: PES_START,
        expected: 0,
        broken: false,
        cc: -1,
        channels,
      });
    }
    for (const pid of this.#es.keys()) if (!seen.has(pid)) this.#es.delete(pid);
  }

  #flush(pid: number, es: Es): void {
    if (es.size === 0 || !es.buf) return;
    // The PES keeps its buffer (frames and parameter sets may be views of it); the next one gets a new one.
    const pes = es.buf.subarray(0, es.size);
    es.hint = Math.max(1024, es.size + (es.size >> 3));
    es.buf = undefined;
    es.size = 0;
    if (es.broken) return;
    try {
      this.#pes(es, es.expected > 0 ? pes.subarray(0, es.expected) : pes);
    } catch (e) {
      this.#onError(new Error(`MPEG-TS: PID ${pid}: ${(e as Error).message}`));
    }
  }

  /** Unwrap a 33-bit 90 kHz time next to the last one seen. */
  #unwrap(t: number): number {
    if (this.#last === undefined) {
      this.#last = t;
      return t;
    }
    const k = Math.round((this.#last - t) / WRAP);
    const u = t + k * WRAP;
    this.#last = u;
    return u;
  }

  #ms(t: number): number {
    return Math.max(0, Math.round((t - (this.#base as number)) / 90));
  }

  #pes(es: Es, pes: Buffer): void {
    if (pes.length < 9) throw new Error("PES header truncated");
    const flags = pes[7] as number;
    const hlen = pes[8] as number;
    if (9 + hlen > pes.length) throw new Error("PES header length past its end");
    let pts: number | undefined;
    let dts: number | undefined;
    if (flags & 0x80 && hlen >= 5) pts = this.#unwrap(readTimestamp(pes, 9));
    if ((flags & 0xc0) === 0xc0 && hlen >= 10) dts = this.#unwrap(readTimestamp(pes, 14));
    if (pts === undefined) throw new Error("PES without a PTS");
    dts ??= pts;
    // The timeline starts at the first decode time seen (a frame of another PID slightly earlier clamps to 0).
    this.#base ??= dts;
    const data = pes.subarray(9 + hlen);
    if (es.codec === "h264") this.#h264(es, data, pts, dts);
    else if (es.codec === "h265") this.#h265(es, data, pts, dts);
    else if (es.codec === "aac") this.#aac(es, data, pts);
    else this.#opus(es, data, pts);
  }

  #h264(es: Es, data: Buffer, pts: number, dts: number): void {
    const nals: Buffer[] = [];
    let key = false;
    for (const nal of splitAnnexB(data)) {
      const t = (nal[0] as number) & 0x1f;
      if (t === 7) es.sps = nal;
      else if (t === 8) es.pps = nal;
      else if (t === 9 || t === 10 || t === 11 || t === 12)
        continue; // AUD, end of sequence/stream, filler
      else {
        if (t === 5) key = true;
        nals.push(nal);
      }
    }
    const ms = this.#ms(dts);
    if (es.sps && es.pps) {
      const rec = avcConfigRecord(es.sps, es.pps);
      if (!es.config?.equals(rec)) {
        es.config = rec;
        this.#onFrame(avcConfigFrame(ms, rec));
      }
    }
    if (!es.config || nals.length === 0) return; // nothing decodable before the parameter sets
    this.#onFrame(avcNaluFrame(ms, nals, key, Math.round((pts - dts) / 90)));
  }

  #h265(es: Es, data: Buffer, pts: number, dts: number): void {
    const nals: Buffer[] = [];
    let key = false;
    for (const nal of splitAnnexB(data)) {
      const t = hevcNalType(nal);
      if (t === HEVC_NAL.VPS) es.vps = nal;
      else if (t === HEVC_NAL.SPS) es.sps = nal;
      else if (t === HEVC_NAL.PPS) es.pps = nal;
      else if (t >= HEVC_NAL.AUD && t <= 38)
        continue; // AUD, end of sequence/bitstream, filler
      else {
        if (isHevcKeyframe(nal)) key = true;
        nals.push(nal);
      }
    }
    const ms = this.#ms(dts);
    if (es.vps && es.sps && es.pps) {
      const params = Buffer.concat([es.vps, es.sps, es.pps]);
      if (!es.config?.equals(params)) {
        // Built first: an unreadable SPS throws here (this PES is dropped and reported) and leaves no config set,
        // so no frame goes out without its SequenceStart and the next parameter sets are tried again.
        const rec = hevcConfigRecord(es.vps, es.sps, es.pps);
        es.config = params;
        this.#onFrame(videoFrame(ms, exVideoTag(VIDEO_PACKET.SequenceStart, FOURCC_HEVC, true, rec)));
      }
    }
    if (!es.config || nals.length === 0) return;
    const body = Buffer.allocUnsafe(nals.reduce((n, x) => n + 4 + x.length, 0));
    let p = 0;
    for (const n of nals) {
      body.writeUInt32BE(n.length, p);
      n.copy(body, p + 4);
      p += 4 + n.length;
    }
    const tag = exVideoTag(VIDEO_PACKET.CodedFrames, FOURCC_HEVC, key, body, Math.round((pts - dts) / 90));
    this.#onFrame(videoFrame(ms, tag));
  }

  #aac(es: Es, data: Buffer, pts: number): void {
    let b = data;
    let ts = pts;
    if (es.rest && es.rest.length > 0 && es.nextTs !== undefined) {
      b = Buffer.concat([es.rest, data]);
      ts = es.nextTs;
    }
    es.rest = undefined;
    let p = 0;
    while (p + 7 <= b.length) {
      if (b[p] !== 0xff || ((b[p + 1] as number) & 0xf6) !== 0xf0) {
        p++; // not a syncword (a broken frame before): hunt for the next one
        continue;
      }
      const protectionAbsent = (b[p + 1] as number) & 1;
      const profile = (b[p + 2] as number) >> 6;
      const freq = ((b[p + 2] as number) >> 2) & 0x0f;
      const chan = (((b[p + 2] as number) & 1) << 2) | ((b[p + 3] as number) >> 6);
      const len = (((b[p + 3] as number) & 3) << 11) | ((b[p + 4] as number) << 3) | ((b[p + 5] as number) >> 5);
      const blocks = ((b[p + 6] as number) & 3) + 1;
      const head = protectionAbsent ? 7 : 9;
      const rate = AAC_RATES[freq];
      if (!rate || len < head) {
        p++;
        continue;
      }
      if (p + len > b.length) {
        es.rest = Buffer.from(b.subarray(p));
        break;
      }
      const asc = Buffer.from([((profile + 1) << 3) | (freq >> 1), ((freq & 1) << 7) | (chan << 3)]);
      const ms = this.#ms(ts);
      if (!es.config?.equals(asc)) {
        es.config = asc;
        this.#onFrame(audioFrame(ms, Buffer.concat([Buffer.from([0xaf, 0]), asc])));
      }
      const raw = b.subarray(p + head, p + len);
      const tag = Buffer.allocUnsafe(2 + raw.length);
      tag[0] = 0xaf;
      tag[1] = 1;
      raw.copy(tag, 2);
      this.#onFrame(audioFrame(ms, tag));
      ts += (blocks * 1024 * 90000) / rate;
      p += len;
    }
    es.nextTs = ts;
  }

  #opus(es: Es, data: Buffer, pts: number): void {
    if (!es.config) {
      const n = es.channels;
      const map = OPUS_VORBIS_MAPPING[n];
      es.config = map
        ? opusHead({ channels: n, mappingFamily: 1, mappingTable: Buffer.from([map[0], map[1], ...map[2]]) })
        : opusHead({ channels: n });
      this.#onFrame(opusConfigFrame(this.#ms(pts), es.config));
    }
    let ts = pts;
    let p = 0;
    while (p + 2 <= data.length) {
      if (data[p] !== 0x7f || ((data[p + 1] as number) & 0xe0) !== 0xe0)
        throw new Error("Opus control header expected");
      const flags = data[p + 1] as number;
      p += 2;
      let size = 0;
      for (;;) {
        const v = data[p++];
        if (v === undefined) throw new Error("Opus au_size truncated");
        size += v;
        if (v !== 0xff) break;
      }
      if (flags & 0x10) p += 2; // start_trim
      if (flags & 0x08) p += 2; // end_trim
      if (flags & 0x04) p += 1 + (data[p] ?? 0); // control extension
      if (p + size > data.length) throw new Error("Opus packet truncated");
      const packet = Buffer.from(data.subarray(p, p + size));
      p += size;
      this.#onFrame(opusPacketFrame(this.#ms(ts), packet));
      ts += (opusPacketSamples(packet) * 90000) / 48000;
    }
  }
}
