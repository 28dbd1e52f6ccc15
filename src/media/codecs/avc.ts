/** H.264: the AVCDecoderConfigurationRecord (FLV/RTMP sequence header) and just enough SPS for the picture size. */

export interface AvcInfo {
  /** RFC 6381 codec string, e.g. `avc1.64001f`. */
  codec: string;
  width: number;
  height: number;
  profile: number;
  level: number;
}

/** Exp-Golomb bit reader over an RBSP (emulation-prevention bytes removed); HEVC's SPS parser shares it. */
export class Bits {
  #b: Buffer;
  #pos = 0;
  constructor(b: Buffer) {
    this.#b = b;
  }
  bit(): number {
    const byte = this.#b[this.#pos >> 3];
    if (byte === undefined) throw new Error("SPS truncated");
    const v = (byte >> (7 - (this.#pos & 7))) & 1;
    this.#pos++;
    return v;
  }
  bits(n: number): number {
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 2 + this.bit();
    return v;
  }
  ue(): number {
    let zeros = 0;
    while (this.bit() === 0) if (++zeros > 31) throw new Error("bad exp-golomb");
    return 2 ** zeros - 1 + this.bits(zeros);
  }
  se(): number {
    const k = this.ue();
    return k & 1 ? (k + 1) / 2 : -(k / 2);
  }
}

export const unescapeRbsp = (nal: Buffer): Buffer => {
  const out: number[] = [];
  for (let i = 0; i < nal.length; i++) {
    if (i >= 2 && nal[i] === 3 && nal[i - 1] === 0 && nal[i - 2] === 0) continue;
    out.push(nal[i] as number);
  }
  return Buffer.from(out);
};

function skipScalingList(r: Bits, size: number): void {
  let last = 8;
  let next = 8;
  for (let j = 0; j < size; j++) {
    if (next !== 0) next = (last + r.se() + 256) % 256;
    last = next === 0 ? last : next;
  }
}

/** Picture size from a sequence parameter set NAL unit (with its 1-byte NAL header). */
export function parseSps(nal: Buffer): { width: number; height: number } {
  const r = new Bits(unescapeRbsp(nal.subarray(1)));
  const profile = r.bits(8);
  r.bits(16); // constraint flags + level
  r.ue(); // seq_parameter_set_id
  let chroma = 1;
  if ([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135].includes(profile)) {
    chroma = r.ue();
    if (chroma === 3) r.bit();
    r.ue();
    r.ue();
    r.bit();
    const scalingMatrixPresent = r.bit();
    if (scalingMatrixPresent) {
      for (let i = 0; i < (chroma === 3 ? 12 : 8); i++) {
        const listPresent = r.bit();
        if (listPresent) skipScalingList(r, i < 6 ? 16 : 64);
      }
    }
  }
  r.ue(); // log2_max_frame_num_minus4
  const pocType = r.ue();
  if (pocType === 0) r.ue();
  else if (pocType === 1) {
    r.bit();
    r.se();
    r.se();
    const n = r.ue();
    for (let i = 0; i < n; i++) r.se();
  }
  r.ue(); // max_num_ref_frames
  r.bit();
  const wMbs = r.ue() + 1;
  const hMapUnits = r.ue() + 1;
  const frameMbsOnly = r.bit();
  if (!frameMbsOnly) r.bit();
  r.bit();
  let [cl, cr, ct, cb] = [0, 0, 0, 0];
  if (r.bit()) [cl, cr, ct, cb] = [r.ue(), r.ue(), r.ue(), r.ue()];
  const subW = chroma === 1 || chroma === 2 ? 2 : 1;
  const subH = chroma === 1 ? 2 : 1;
  const cropX = chroma === 0 ? 1 : subW;
  const cropY = (chroma === 0 ? 1 : subH) * (2 - frameMbsOnly);
  return {
    width: wMbs * 16 - (cl + cr) * cropX,
    height: (2 - frameMbsOnly) * hMapUnits * 16 - (ct + cb) * cropY,
  };
}

/** Parse an AVCDecoderConfigurationRecord (ISO 14496-15 5.2.4.1). */
export function parseAvcConfig(rec: Buffer): AvcInfo {
  if (rec.length < 8 || rec[0] !== 1) throw new Error("not an AVCDecoderConfigurationRecord");
  const numSps = (rec[5] as number) & 0x1f;
  if (numSps < 1) throw new Error("AVC config has no SPS");
  const len = rec.readUInt16BE(6);
  const sps = rec.subarray(8, 8 + len);
  const { width, height } = parseSps(sps);
  const hex = (n: number) => n.toString(16).padStart(2, "0");
  return {
    codec: `avc1.${hex(rec[1] as number)}${hex(rec[2] as number)}${hex(rec[3] as number)}`,
    width,
    height,
    profile: rec[1] as number,
    level: rec[3] as number,
  };
}
