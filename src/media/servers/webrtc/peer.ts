/**
 * werift peer connections for WHIP and WHEP: one video codec, H.264 (packetization-mode 1) or for a WHEP viewer
 * that gets an H.265 path as it is H.265 (RFC 7798), and Opus, host
 * candidates only on the configured addresses (127.0.0.1 by default: nothing reaches the internet and no STUN
 * is asked unless iceServers says so), UDP ports from the configured range. Offers are non-trickle: the answer
 * is returned once gathering is complete, with every candidate in it.
 */
import { RTCPeerConnection, RTCRtpCodecParameters } from "werift";
import { AmiError } from "../../../core/errors.ts";

export interface WebRtcOptions {
  /** Addresses offered as host candidates (empty: every interface werift finds). */
  hostAddresses: string[];
  udpPortMin: number | null;
  udpPortMax: number | null;
  iceServers: { urls: string | string[]; username?: string; credential?: string }[];
}

export const H264_FMTP = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";

export type WebRtcVideoCodec = "h264" | "h265";

const FEEDBACK = [{ type: "nack" }, { type: "nack", parameter: "pli" }, { type: "ccm", parameter: "fir" }];

const codecs = (video: WebRtcVideoCodec) => ({
  video: [
    video === "h265"
      ? new RTCRtpCodecParameters({ mimeType: "video/H265", clockRate: 90000, rtcpFeedback: FEEDBACK })
      : new RTCRtpCodecParameters({
          mimeType: "video/H264",
          clockRate: 90000,
          rtcpFeedback: FEEDBACK,
          parameters: H264_FMTP,
        }),
  ],
  audio: [new RTCRtpCodecParameters({ mimeType: "audio/opus", clockRate: 48000, channels: 2 })],
});

/** Whether an SDP offer takes H.265 video (a browser with an H.265 decoder for WebRTC offers it). */
export const offersH265 = (sdp: string): boolean => /^a=rtpmap:\d+ H265\/90000/im.test(sdp);

export function createPeer(o: WebRtcOptions, video: WebRtcVideoCodec = "h264"): RTCPeerConnection {
  const v4 = o.hostAddresses.filter((a) => /^\d+\.\d+\.\d+\.\d+$/.test(a));
  return new RTCPeerConnection({
    codecs: codecs(video),
    iceServers: o.iceServers,
    icePortRange: o.udpPortMin !== null && o.udpPortMax !== null ? [o.udpPortMin, o.udpPortMax] : undefined,
    iceAdditionalHostAddresses: o.hostAddresses.length > 0 ? o.hostAddresses : undefined,
    // With one IPv4 address configured, every socket binds to it (werift would otherwise bind 0.0.0.0).
    iceInterfaceAddresses: v4.length === 1 && o.hostAddresses.length === 1 ? { udp4: v4[0] as string } : undefined,
    iceUseIpv6: o.hostAddresses.length === 0 || o.hostAddresses.some((a) => a.includes(":")),
    iceUseTcp: false,
    bundlePolicy: "max-bundle",
  });
}

/** A plausible SDP offer, or a clear reason why not (checked before werift sees it). */
export function checkOffer(sdp: string, need: "video" | "any"): void {
  const bad = (why: string) => new AmiError("AMI_INVALID_INPUT", `invalid SDP offer: ${why}`);
  if (!sdp.startsWith("v=0")) throw bad("it must start with 'v=0'");
  if (!/^m=(audio|video) /m.test(sdp)) throw bad("no audio or video m-line");
  if (!/^a=ice-ufrag:/m.test(sdp) || !/^a=ice-pwd:/m.test(sdp)) throw bad("no ICE credentials (a=ice-ufrag/ice-pwd)");
  if (!/^a=fingerprint:/m.test(sdp)) throw bad("no DTLS fingerprint (a=fingerprint)");
  if (need === "video" && !/^a=rtpmap:\d+ H264\/90000/im.test(sdp))
    throw bad("no H.264 video (a=rtpmap:<pt> H264/90000)");
}

/** Answer after gathering, with host candidates limited to the configured addresses. */
export async function answer(pc: RTCPeerConnection, o: WebRtcOptions): Promise<string> {
  await pc.setLocalDescription(await pc.createAnswer());
  if (pc.iceGatheringState !== "complete") {
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 5000);
      pc.iceGatheringStateChange.subscribe((s) => {
        if (s === "complete") {
          clearTimeout(t);
          resolve();
        }
      });
    });
  }
  const sdp = pc.localDescription?.sdp ?? "";
  if (o.hostAddresses.length === 0) return sdp;
  const allowed = new Set(o.hostAddresses);
  return sdp
    .split("\r\n")
    .filter((l) => {
      const m = /^a=candidate:\S+ \d+ \S+ \d+ (\S+) \d+ typ host/.exec(l);
      return !m || allowed.has(m[1] as string);
    })
    .join("\r\n");
}
