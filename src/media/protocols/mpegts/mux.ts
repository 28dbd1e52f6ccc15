/**
 * Hub frames -> MPEG-TS (ISO 13818-1), the reverse of demux.ts: one program, PAT and PMT at the start, before
 * every video keyframe (so any keyframe can start a segment) and whenever a track's codec appears or changes
 * (PMT version bump); audio-only streams repeat them every `psiIntervalMs`. PCR in the adaptation field of
 * the first packet of each PES on the PCR PID (the video PID, else the audio one), running `pcrLeadMs` behind
 * the DTS. H.264/H.265 as Annex B with an access unit delimiter and the parameter sets before every
 * keyframe; AAC as ADTS; Opus with its control header (and the registration/extension descriptors in the PMT).
 * Continuity counters per PID; the last packet of a PES is padded with adaptation-field stuffing.
 *
 * `frame()` returns whole 188-byte packets (possibly none: a config frame, or media before its config / before
 * the first video keyframe, which a decoder could not use).
 */
import { HEVC_NAL, hvccNalUnits } from "../../codecs/hevc.ts";
import type { Frame } from "../../frame.ts";
import { AUDIO_PACKET, FOURCC_OPUS, parseExAudio, parseOpusHead } from "../flv/ex-audio.ts";
import { FOURCC_HEVC, parseVideoTag } from "../flv/ex-video.ts";
import { SOUND_AAC } from "../flv/tag.ts";
import { splitAvcConfig } from "../webrtc/avc-tags.ts";
import { crc32Mpeg, PID_PAT, STREAM_TYPE, SYNC, TS_PACKET, writeTimestamp } from "./psi.ts";

export interface TsMuxerOptions {
  /** Default 0x100. */
  videoPid?: number;
  /** Default 0x101. */
  audioPid?: number;
  /** Default 0x1000. */
  pmtPid?: number;
  /** Added to every frame time so the PCR (which runs `pcrLeadMs` behind) starts positive. Default 1400. */
  offsetMs?: number;
  /** How far the PCR runs behind the DTS it is sent with: the decoder's buffering. Default 700. */
  pcrLeadMs?: number;
  /** Audio-only streams: PAT/PMT at least this often. Default 500. */
  psiIntervalMs?: number;
}

type VideoCodec = { kind: "h264"; params: Buffer[]; lengthSize: number } | { kind: "h265"; params: Buffer[] };
type AudioCodec = { kind: "aac"; profile: number; freq: number; channels: number } | { kind: "opus"; channels: number };

const START = Buffer.from([0, 0, 0, 1]);
const AUD_H264 = Buffer.from([0, 0, 0, 1, 0x09, 0xf0]);
const AUD_H265 = Buffer.from([0, 0, 0, 1, 0x46, 0x01, 0x50]);

export class TsMuxer {
  readonly videoPid: number;
  readonly audioPid: number;
  readonly pmtPid: number;
  #offset: number;
  #pcrLead: number;
  #psiInterval: number;
  #video: VideoCodec | undefined;
  #audio: AudioCodec | undefined;
  #pmtVersion = 0;
  #psiDirty = true;
  #lastPsi = Number.NEGATIVE_INFINITY;
  #videoStarted = false;
  #cc = new Map<number, number>();

  constructor(opts: TsMuxerOptions = {}) {
    this.videoPid = opts.videoPid ?? 0x100;
    this.audioPid = opts.audioPid ?? 0x101;
    this.pmtPid = opts.pmtPid ?? 0x1000;
    this.#offset = opts.offsetMs ?? 1400;
    this.#pcrLead = opts.pcrLeadMs ?? 700;
    this.#psiInterval = opts.psiIntervalMs ?? 500;
  }

  /** True once a video keyframe went out (video streams), or any audio (audio-only). */
  get started(): boolean {
    return this.#videoStarted || (!this.#video && this.#lastPsi > Number.NEGATIVE_INFINITY);
  }

  /**
   * PAT + PMT now (two packets), or nothing before any track is configured: for a segment that starts without a
   * keyframe (one cut inside a long GOP), so a player joining there still learns the program.
   */
  tables(dtsMs = 0): Buffer {
    return this.#video || this.#audio ? this.#psi(dtsMs) : Buffer.alloc(0);
  }

  /**
   * `ptsTicks` (video) is added to the PTS in 90 kHz ticks after rounding: the WebRTC re-encoder marks a frame with
   * one tick, which ffmpeg's `-force_key_frames expr:` can see (video-transcode.ts).
   */
  frame(f: Frame, ptsTicks = 0): Buffer {
    if (f.kind === "video") return this.#videoFrame(f, ptsTicks);
    if (f.kind === "audio") return this.#audioFrame(f);
    return Buffer.alloc(0);
  }

  #videoFrame(f: Frame, ptsTicks: number): Buffer {
    const t = parseVideoTag(f.data);
    if (!t) return Buffer.alloc(0);
    if (t.packet === "config") {
      const rec = f.data.subarray(t.offset);
      let next: VideoCodec | undefined;
      try {
        if (t.fourcc === "avc1") {
          const p = splitAvcConfig(rec);
          next = { kind: "h264", params: [...p.sps, ...p.pps], lengthSize: p.lengthSize };
        } else if (t.fourcc === FOURCC_HEVC) {
          const u = hvccNalUnits(rec);
          const params = [HEVC_NAL.VPS, HEVC_NAL.SPS, HEVC_NAL.PPS].flatMap((k) => u.get(k) ?? []);
          next = { kind: "h265", params };
        }
      } catch {
        next = undefined; // an unreadable record: the frames after it are dropped until a good one
      }
      if (next?.kind !== this.#video?.kind) this.#psiDirty = true;
      this.#video = next;
      if (!next) this.#videoStarted = false;
      return Buffer.alloc(0);
    }
    const v = this.#video;
    if (t.packet !== "frame" || !v) return Buffer.alloc(0);
    if (!f.keyframe && !this.#videoStarted) return Buffer.alloc(0);
    const nals = lengthNals(f.data.subarray(t.offset), v.kind === "h264" ? v.lengthSize : 4);
    if (nals.length === 0) return Buffer.alloc(0);
    const out: Buffer[] = [];
    if (f.keyframe || this.#psiDirty) out.push(this.#psi(f.dts));
    if (f.keyframe) this.#videoStarted = true;
    // Annex B: AUD, parameter sets before a keyframe (unless the sample carries its own), the NAL units.
    const h264 = v.kind === "h264";
    const isParam = (n: Buffer) =>
      h264 ? ((n[0] as number) & 0x1f) === 7 : (((n[0] as number) >> 1) & 0x3f) === HEVC_NAL.VPS;
    const withParams = f.keyframe && !nals.some(isParam);
    const aud = h264 ? AUD_H264 : AUD_H265;
    let size = aud.length;
    if (withParams) for (const p of v.params) size += 4 + p.length;
    for (const n of nals) size += 4 + n.length;
    const dts = f.dts + this.#offset;
    const pts = dts + t.cts;
    const head = pesHeader(0xe0, size, pts, dts, ptsTicks);
    const es = Buffer.allocUnsafe(head.length + size);
    head.copy(es, 0);
    let p = head.length;
    p += aud.copy(es, p);
    const put = (n: Buffer) => {
      p += START.copy(es, p);
      p += n.copy(es, p);
    };
    if (withParams) for (const n of v.params) put(n);
    for (const n of nals) put(n);
    out.push(this.#packetize(this.videoPid, es, (dts - this.#pcrLead) * 90, f.keyframe));
    return out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out);
  }

  #audioFrame(f: Frame): Buffer {
    const ex = parseExAudio(f.data);
    if (ex) {
      if (ex.fourcc !== FOURCC_OPUS) return Buffer.alloc(0);
      if (ex.packetType === AUDIO_PACKET.SequenceStart) {
        let channels = 0;
        try {
          channels = parseOpusHead(ex.body).channels;
        } catch {
          channels = 0;
        }
        this.#setAudio(channels > 0 && channels <= 8 ? { kind: "opus", channels } : undefined);
        return Buffer.alloc(0);
      }
      if (ex.packetType !== AUDIO_PACKET.CodedFrames || this.#audio?.kind !== "opus") return Buffer.alloc(0);
      return this.#audioPes(f.dts, opusPayload(ex.body), 0xbd);
    }
    if ((f.data[0] ?? 0) >> 4 !== SOUND_AAC || f.data.length < 2) return Buffer.alloc(0);
    if (f.data[1] === 0) {
      const asc = f.data.subarray(2);
      if (asc.length < 2) {
        this.#setAudio(undefined);
        return Buffer.alloc(0);
      }
      const objectType = (asc[0] as number) >> 3;
      const freq = (((asc[0] as number) & 7) << 1) | ((asc[1] as number) >> 7);
      const channels = ((asc[1] as number) >> 3) & 0xf;
      // ADTS carries profiles 1..4 (object types 1..4) and an indexed rate; other configs cannot be written as ADTS.
      const ok = objectType >= 1 && objectType <= 4 && freq < 13 && channels <= 7;
      this.#setAudio(ok ? { kind: "aac", profile: objectType - 1, freq, channels } : undefined);
      return Buffer.alloc(0);
    }
    const a = this.#audio;
    if (a?.kind !== "aac") return Buffer.alloc(0);
    const raw = f.data.subarray(2);
    const len = raw.length + 7;
    if (len > 0x1fff) return Buffer.alloc(0);
    const adts = Buffer.allocUnsafe(len);
    adts[0] = 0xff;
    adts[1] = 0xf1;
    adts[2] = (a.profile << 6) | (a.freq << 2) | (a.channels >> 2);
    adts[3] = ((a.channels & 3) << 6) | (len >> 11);
    adts[4] = (len >> 3) & 0xff;
    adts[5] = ((len & 7) << 5) | 0x1f;
    adts[6] = 0xfc;
    raw.copy(adts, 7);
    return this.#audioPes(f.dts, adts, 0xc0);
  }

  #setAudio(next: AudioCodec | undefined): void {
    const a = this.#audio;
    const same =
      a?.kind === next?.kind && (a?.kind !== "opus" || next?.kind !== "opus" || a.channels === next.channels);
    if (!same) this.#psiDirty = true;
    this.#audio = next;
  }

  #audioPes(dtsMs: number, payload: Buffer, streamId: number): Buffer {
    // With video, audio waits for the first keyframe (a player starts there anyway).
    if (this.#video && !this.#videoStarted) return Buffer.alloc(0);
    const out: Buffer[] = [];
    const audioOnly = !this.#video;
    if (this.#psiDirty || (audioOnly && dtsMs - this.#lastPsi >= this.#psiInterval)) out.push(this.#psi(dtsMs));
    const dts = dtsMs + this.#offset;
    const head = pesHeader(streamId, payload.length, dts, dts);
    const pcr = audioOnly ? (dts - this.#pcrLead) * 90 : undefined;
    out.push(this.#packetize(this.audioPid, Buffer.concat([head, payload]), pcr, false));
    return out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out);
  }

  #nextCc(pid: number): number {
    const cc = ((this.#cc.get(pid) ?? -1) + 1) & 0x0f;
    this.#cc.set(pid, cc);
    return cc;
  }

  /** PAT + PMT, two packets. */
  #psi(dtsMs: number): Buffer {
    if (this.#psiDirty) {
      this.#pmtVersion = (this.#pmtVersion + 1) & 0x1f;
      this.#psiDirty = false;
    }
    this.#lastPsi = dtsMs;
    const pat = Buffer.from([0x00, 0xb0, 13, 0, 1, 0xc1, 0, 0, 0, 1, 0xe0 | (this.pmtPid >> 8), this.pmtPid & 0xff]);
    const streams: Buffer[] = [];
    const es = (type: number, pid: number, desc: Buffer = Buffer.alloc(0)) =>
      Buffer.concat([Buffer.from([type, 0xe0 | (pid >> 8), pid & 0xff, 0xf0 | (desc.length >> 8), desc.length]), desc]);
    if (this.#video) streams.push(es(this.#video.kind === "h264" ? STREAM_TYPE.H264 : STREAM_TYPE.H265, this.videoPid));
    if (this.#audio?.kind === "aac") streams.push(es(STREAM_TYPE.AAC_ADTS, this.audioPid));
    if (this.#audio?.kind === "opus") {
      const desc = Buffer.from([0x05, 4, 0x4f, 0x70, 0x75, 0x73, 0x7f, 2, 0x80, this.#audio.channels]);
      streams.push(es(STREAM_TYPE.PRIVATE_PES, this.audioPid, desc));
    }
    const pcrPid = this.#video ? this.videoPid : this.audioPid;
    const body = Buffer.concat(streams);
    const len = 9 + body.length + 4;
    const pmt = Buffer.concat([
      Buffer.from([0x02, 0xb0 | (len >> 8), len & 0xff, 0, 1, 0xc1 | (this.#pmtVersion << 1), 0, 0]),
      Buffer.from([0xe0 | (pcrPid >> 8), pcrPid & 0xff, 0xf0, 0]),
      body,
    ]);
    return Buffer.concat([this.#section(PID_PAT, pat), this.#section(this.pmtPid, pmt)]);
  }

  /** One PSI section (CRC appended) in one packet, padded with 0xff. */
  #section(pid: number, sec: Buffer): Buffer {
    const pk = Buffer.alloc(TS_PACKET, 0xff);
    pk[0] = SYNC;
    pk[1] = 0x40 | (pid >> 8);
    pk[2] = pid & 0xff;
    pk[3] = 0x10 | this.#nextCc(pid);
    pk[4] = 0; // pointer_field
    sec.copy(pk, 5);
    pk.writeUInt32BE(crc32Mpeg(sec), 5 + sec.length);
    return pk;
  }

  /** A PES into packets: PCR and random_access_indicator in the first one's adaptation field, stuffing in the last. */
  #packetize(pid: number, pes: Buffer, pcr: number | undefined, randomAccess: boolean): Buffer {
    const withPcr = pcr !== undefined;
    const out = Buffer.allocUnsafe((Math.ceil((pes.length + 8) / 184) + 1) * TS_PACKET);
    let o = 0;
    let pos = 0;
    let first = true;
    while (pos < pes.length) {
      let afLen = -1; // adaptation_field_length; -1: no adaptation field
      let flags = 0;
      if (first && (withPcr || randomAccess)) {
        afLen = 1 + (withPcr ? 6 : 0);
        flags = (randomAccess ? 0x40 : 0) | (withPcr ? 0x10 : 0);
      }
      const cap = 184 - (afLen >= 0 ? 1 + afLen : 0);
      const take = Math.min(cap, pes.length - pos);
      if (take < cap) {
        const extra = cap - take;
        if (afLen >= 0) afLen += extra;
        else afLen = extra - 1; // 0: just the length byte; more: flags byte then 0xff stuffing
      }
      out[o] = SYNC;
      out[o + 1] = (first ? 0x40 : 0) | (pid >> 8);
      out[o + 2] = pid & 0xff;
      out[o + 3] = (afLen >= 0 ? 0x30 : 0x10) | this.#nextCc(pid);
      let p = o + 4;
      if (afLen >= 0) {
        out[p++] = afLen;
        if (afLen > 0) {
          out[p++] = flags;
          if (first && withPcr) {
            const base = Math.max(0, Math.floor(pcr)) % 8589934592;
            out.writeUInt32BE(Math.floor(base / 2), p);
            out[p + 4] = ((base & 1) << 7) | 0x7e;
            out[p + 5] = 0;
            p += 6;
          }
          out.fill(0xff, p, o + 5 + afLen);
          p = o + 5 + afLen;
        }
      }
      pes.copy(out, p, pos, pos + take);
      pos += take;
      o += TS_PACKET;
      first = false;
    }
    return out.subarray(0, o);
  }
}

/**
 * A PES header with PTS (and DTS when it differs). PES_packet_length is set whenever it fits, video included,
 * so a demuxer can hand the frame on at its last packet; a video PES over 64 KiB is unbounded (0).
 */
function pesHeader(streamId: number, payload: number, pts: number, dts: number, ptsTicks = 0): Buffer {
  const both = pts !== dts || ptsTicks !== 0;
  const hlen = both ? 10 : 5;
  const h = Buffer.allocUnsafe(9 + hlen);
  h[0] = 0;
  h[1] = 0;
  h[2] = 1;
  h[3] = streamId;
  const len = 3 + hlen + payload;
  h.writeUInt16BE(len > 0xffff ? 0 : len, 4);
  h[6] = 0x84; // '10', data_alignment_indicator
  h[7] = both ? 0xc0 : 0x80;
  h[8] = hlen;
  writeTimestamp(h, 9, both ? 3 : 2, Math.round(pts * 90) + ptsTicks);
  if (both) writeTimestamp(h, 14, 1, Math.round(dts * 90));
  return h;
}

/** NAL units of a length-prefixed sample (stops at a truncated one). */
function lengthNals(b: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i + size <= b.length; ) {
    const n = b.readUIntBE(i, size);
    i += size;
    if (n === 0 || i + n > b.length) break;
    out.push(b.subarray(i, i + n));
    i += n;
  }
  return out;
}

/** An Opus packet behind its TS control header (0x7fe0, au_size as 0xff runs), no trims. */
function opusPayload(packet: Buffer): Buffer {
  const ff = Math.floor(packet.length / 255);
  const b = Buffer.allocUnsafe(2 + ff + 1 + packet.length);
  b[0] = 0x7f;
  b[1] = 0xe0;
  b.fill(0xff, 2, 2 + ff);
  b[2 + ff] = packet.length - ff * 255;
  packet.copy(b, 3 + ff);
  return b;
}
