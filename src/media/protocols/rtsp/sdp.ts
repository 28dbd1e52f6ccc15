/**
 * SDP (RFC 4566) as RTSP uses it: the tracks a publisher ANNOUNCEs, and the description a reader gets from
 * DESCRIBE. Only what the four codecs need: m= lines, a=rtpmap, a=fmtp, a=control.
 */

export type TrackCodec = "H264" | "H265" | "AAC" | "OPUS";

export interface SdpTrack {
  kind: "video" | "audio";
  codec: TrackCodec | undefined;
  /** Encoding name as written (for the error when it is not one of ours). */
  encoding: string;
  payloadType: number;
  clockRate: number;
  channels: number;
  /** a=fmtp parameters, lower-cased names. */
  fmtp: Map<string, string>;
  /** a=control value ("" when absent). */
  control: string;
}

const CODECS: Record<string, TrackCodec> = {
  H264: "H264",
  H265: "H265",
  "MPEG4-GENERIC": "AAC",
  OPUS: "OPUS",
};

/** The audio and video tracks of an SDP; other media (application, text) are skipped. */
export function parseSdp(text: string): SdpTrack[] {
  const tracks: SdpTrack[] = [];
  let cur: SdpTrack | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line.startsWith("m=")) {
      const [media, , , pt] = line.slice(2).split(/\s+/);
      cur = undefined;
      if (media !== "video" && media !== "audio") continue;
      cur = {
        kind: media,
        codec: undefined,
        encoding: "",
        payloadType: Number(pt),
        clockRate: 0,
        channels: 1,
        fmtp: new Map(),
        control: "",
      };
      tracks.push(cur);
      continue;
    }
    if (!cur || !line.startsWith("a=")) continue;
    const attr = line.slice(2);
    const colon = attr.indexOf(":");
    const name = colon < 0 ? attr : attr.slice(0, colon);
    const value = colon < 0 ? "" : attr.slice(colon + 1);
    if (name === "control") cur.control = value.trim();
    else if (name === "rtpmap") {
      const m = /^(\d+)\s+([^/\s]+)\/(\d+)(?:\/(\d+))?/.exec(value);
      if (m && Number(m[1]) === cur.payloadType) {
        cur.encoding = m[2] as string;
        cur.codec = CODECS[cur.encoding.toUpperCase()];
        cur.clockRate = Number(m[3]);
        if (m[4]) cur.channels = Number(m[4]);
      }
    } else if (name === "fmtp") {
      const sp = value.indexOf(" ");
      if (Number(value.slice(0, sp)) !== cur.payloadType) continue;
      for (const kv of value.slice(sp + 1).split(";")) {
        const eq = kv.indexOf("=");
        if (eq > 0) cur.fmtp.set(kv.slice(0, eq).trim().toLowerCase(), kv.slice(eq + 1).trim());
      }
    }
  }
  return tracks;
}

export interface SdpOut {
  kind: "video" | "audio";
  payloadType: number;
  /** The rtpmap value after the payload type, e.g. `H264/90000`. */
  rtpmap: string;
  fmtp?: string;
  control: string;
}

/** A session description for DESCRIBE: one media section per track, ports 0 (RTSP sets them up). */
export function buildSdp(o: { origin: string; name: string; tracks: SdpOut[] }): string {
  const lines = [
    "v=0",
    `o=- ${Date.now()} 1 IN IP4 ${o.origin}`,
    `s=${o.name}`,
    "c=IN IP4 0.0.0.0",
    "t=0 0",
    "a=control:*",
    "a=range:npt=now-",
  ];
  for (const t of o.tracks) {
    lines.push(`m=${t.kind} 0 RTP/AVP ${t.payloadType}`, `a=rtpmap:${t.payloadType} ${t.rtpmap}`);
    if (t.fmtp) lines.push(`a=fmtp:${t.payloadType} ${t.fmtp}`);
    lines.push(`a=control:${t.control}`);
  }
  return `${lines.join("\r\n")}\r\n`;
}
