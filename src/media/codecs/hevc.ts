/**
 * H.265/HEVC: the HEVCDecoderConfigurationRecord (ISO 14496-15 8.3.3.1; the `hvcC` box payload, and what an
 * enhanced-RTMP 'hvc1' SequenceStart carries), its RFC 6381 codec string, and the picture size from its SPS.
 */
import { Bits, unescapeRbsp } from "./avc.ts";

export interface HevcInfo {
  /** RFC 6381 / ISO 14496-15 Annex E codec string, e.g. `hvc1.1.6.L93.B0`. */
  codec: string;
  width: number;
  height: number;
}

/** The NAL units of a record by type (arrays of VPS, SPS, PPS, SEI...). */
export function hvccNalUnits(rec: Buffer): Map<number, Buffer[]> {
  const out = new Map<number, Buffer[]>();
  if (rec.length < 23) return out;
  let p = 23;
  for (let a = 0; a < (rec[22] as number); a++) {
    if (p + 3 > rec.length) throw new Error("HEVC config truncated");
    const type = (rec[p] as number) & 0x3f;
    const n = rec.readUInt16BE(p + 1);
    p += 3;
    for (let i = 0; i < n; i++) {
      if (p + 2 > rec.length) throw new Error("HEVC config truncated");
      const len = rec.readUInt16BE(p);
      if (p + 2 + len > rec.length) throw new Error("HEVC config truncated");
      const list = out.get(type) ?? [];
      list.push(rec.subarray(p + 2, p + 2 + len));
      out.set(type, list);
      p += 2 + len;
    }
  }
  return out;
}

/** Picture size from an SPS NAL unit (2-byte NAL header included), H.265 7.3.2.2. */
export function parseHevcSps(nal: Buffer): {
  width: number;
  height: number;
  chroma: number;
  bitDepth: number;
  bitDepthChroma: number;
} {
  const r = new Bits(unescapeRbsp(nal.subarray(2)));
  r.bits(4); // sps_video_parameter_set_id
  const maxSubLayersMinus1 = r.bits(3);
  r.bit(); // temporal_id_nesting
  // profile_tier_level(1, maxSubLayersMinus1): 88 bits of general profile, 8 of level, then sub-layer flags.
  r.bits(32);
  r.bits(32);
  r.bits(32);
  const subProfile: number[] = [];
  const subLevel: number[] = [];
  for (let i = 0; i < maxSubLayersMinus1; i++) {
    subProfile.push(r.bit());
    subLevel.push(r.bit());
  }
  if (maxSubLayersMinus1 > 0) for (let i = maxSubLayersMinus1; i < 8; i++) r.bits(2);
  for (let i = 0; i < maxSubLayersMinus1; i++) {
    if (subProfile[i]) {
      r.bits(32);
      r.bits(32);
      r.bits(24);
    }
    if (subLevel[i]) r.bits(8);
  }
  r.ue(); // sps_seq_parameter_set_id
  const chroma = r.ue();
  if (chroma === 3) r.bit(); // separate_colour_plane_flag
  let width = r.ue();
  let height = r.ue();
  if (r.bit()) {
    const [left, right, top, bottom] = [r.ue(), r.ue(), r.ue(), r.ue()];
    const subW = chroma === 1 || chroma === 2 ? 2 : 1;
    const subH = chroma === 1 ? 2 : 1;
    width -= (left + right) * subW;
    height -= (top + bottom) * subH;
  }
  const bitDepth = r.ue() + 8;
  const bitDepthChroma = r.ue() + 8;
  return { width, height, chroma, bitDepth, bitDepthChroma };
}

/** Reverse the bits of a 32-bit value (the codec string lists compatibility flags in reverse order). */
function reverse32(v: number): number {
  let out = 0;
  for (let i = 0; i < 32; i++) out = (out << 1) | ((v >>> i) & 1);
  return out >>> 0;
}

/** Parse an HEVCDecoderConfigurationRecord. */
export function parseHevcConfig(rec: Buffer): HevcInfo {
  if (rec.length < 23 || rec[0] !== 1) throw new Error("not an HEVCDecoderConfigurationRecord");
  const b1 = rec[1] as number;
  const space = ["", "A", "B", "C"][b1 >> 6];
  const tier = (b1 >> 5) & 1 ? "H" : "L";
  const profile = b1 & 0x1f;
  const compat = reverse32(rec.readUInt32BE(2)).toString(16).toUpperCase();
  const constraints = [...rec.subarray(6, 12)].map((b) => b.toString(16).toUpperCase());
  while (constraints.length > 0 && constraints.at(-1) === "0") constraints.pop();
  const codec = ["hvc1", `${space}${profile}`, compat, `${tier}${rec[12]}`, ...constraints].join(".");
  const sps = hvccNalUnits(rec).get(HEVC_NAL.SPS)?.[0];
  if (!sps) throw new Error("HEVC config has no SPS");
  const { width, height } = parseHevcSps(sps);
  return { codec, width, height };
}

export const HEVC_NAL = { VPS: 32, SPS: 33, PPS: 34, AUD: 35, PREFIX_SEI: 39, SUFFIX_SEI: 40 } as const;
export const hevcNalType = (nal: Buffer): number => ((nal[0] ?? 0) >> 1) & 0x3f;
/** IRAP pictures (BLA, IDR, CRA): where a decoder can start. */
export const isHevcKeyframe = (nal: Buffer): boolean => {
  const t = hevcNalType(nal);
  return t >= 16 && t <= 23;
};

/**
 * An HEVCDecoderConfigurationRecord from a stream's VPS, SPS and PPS (4-byte NAL lengths): what a publisher
 * sends as its SequenceStart. The general profile/tier/level fields are copied from the SPS.
 */
export function hevcConfigRecord(vps: Buffer, sps: Buffer, pps: Buffer): Buffer {
  // SPS: 2-byte NAL header, then vps id / max sub-layers / nesting (1 byte), then the 12-byte general PTL.
  const rbsp = unescapeRbsp(sps.subarray(2));
  const ptl = rbsp.subarray(1, 13);
  if (ptl.length < 12) throw new Error("SPS too short for a profile_tier_level");
  const head = Buffer.alloc(23);
  head[0] = 1;
  ptl.copy(head, 1, 0, 12); // profile space/tier/idc, 32 compatibility flags, 48 constraint flags, level
  head.writeUInt16BE(0xf000, 13); // min_spatial_segmentation_idc 0
  head[15] = 0xfc; // parallelismType 0
  const s = parseHevcSps(sps);
  head[16] = 0xfc | s.chroma;
  head[17] = 0xf8 | (s.bitDepth - 8);
  head[18] = 0xf8 | (s.bitDepthChroma - 8);
  head.writeUInt16BE(0, 19); // avgFrameRate unknown
  head[21] = (1 << 3) | (((rbsp[0] ?? 0) & 1) << 2) | 3; // 1 temporal layer, nesting, 4-byte lengths
  head[22] = 3;
  const array = (type: number, nal: Buffer) => {
    const a = Buffer.alloc(5);
    a[0] = 0x80 | type; // array_completeness: parameter sets only here
    a.writeUInt16BE(1, 1);
    a.writeUInt16BE(nal.length, 3);
    return Buffer.concat([a, nal]);
  };
  return Buffer.concat([head, array(HEVC_NAL.VPS, vps), array(HEVC_NAL.SPS, sps), array(HEVC_NAL.PPS, pps)]);
}
