/** AAC: the AudioSpecificConfig (ISO 14496-3 1.6.2.1) carried in the FLV/RTMP AAC sequence header. */

export interface AacInfo {
  /** RFC 6381 codec string, e.g. `mp4a.40.2`. */
  codec: string;
  sampleRate: number;
  channels: number;
}

const rates = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

export function parseAudioSpecificConfig(asc: Buffer): AacInfo {
  if (asc.length < 2) throw new Error("AudioSpecificConfig too short");
  const objectType = (asc[0] as number) >> 3;
  const freqIndex = (((asc[0] as number) & 7) << 1) | ((asc[1] as number) >> 7);
  let sampleRate = rates[freqIndex] ?? 0;
  let channels = ((asc[1] as number) >> 3) & 0xf;
  if (freqIndex === 15) {
    if (asc.length < 5) throw new Error("AudioSpecificConfig too short");
    sampleRate = ((asc.readUInt32BE(1) >>> 7) & 0xffffff) >>> 0;
    channels = ((asc[4] as number) >> 3) & 0xf;
  }
  return { codec: `mp4a.40.${objectType}`, sampleRate, channels };
}
