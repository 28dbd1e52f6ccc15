/**
 * werift peer connections for WHIP and WHEP: one H.264 video codec (packetization-mode 1) and Opus, host
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

const codecs = () => ({
  video: [
    new RTCRtpCodecParameters({
      mimeType: "video/H264",
      clockRate: 90000,
      rtcpFeedback: [{ type: "nack" }, { type: "nack", parameter: "pli" }, { type: "ccm", parameter: "fir" }],
      parameters: H264_FMTP,
    }),
  ],
  audio: [new RTCRtpCodecParameters({ mimeType: "audio/opus", clockRate: 48000, channels: 2 })],
});

export function createPeer(o: WebRtcOptions): RTCPeerConnection {
  const v4 = o.hostAddresses.filter((a) => /^\d+\.\d+\.\d+\.\d+$/.test(a));
  return new RTCPeerConnection({
    codecs: codecs(),
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
