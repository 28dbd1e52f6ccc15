/** A WHIP/WHEP client on werift (WebRTC in Node): non-trickle offer, POST, answer. Loopback candidates only. */
import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters } from "werift";

const h264 = () =>
  new RTCRtpCodecParameters({
    mimeType: "video/H264",
    clockRate: 90000,
    rtcpFeedback: [{ type: "nack" }, { type: "nack", parameter: "pli" }],
    parameters: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
  });

export function clientPeer(): RTCPeerConnection {
  return new RTCPeerConnection({
    codecs: {
      video: [h264()],
      audio: [new RTCRtpCodecParameters({ mimeType: "audio/opus", clockRate: 48000, channels: 2 })],
    },
    iceAdditionalHostAddresses: ["127.0.0.1"],
    iceInterfaceAddresses: { udp4: "127.0.0.1" },
    iceUseIpv6: false,
    iceUseTcp: false,
    bundlePolicy: "max-bundle",
  });
}

/** Offer, POST it to `url`, apply the answer; returns the session's Location. */
export async function negotiate(pc: RTCPeerConnection, url: string): Promise<string> {
  await pc.setLocalDescription(await pc.createOffer());
  if (pc.iceGatheringState !== "complete")
    await new Promise<void>((r) => pc.iceGatheringStateChange.subscribe((s) => s === "complete" && r()));
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/sdp" },
    body: pc.localDescription?.sdp,
  });
  const body = await res.text();
  if (res.status !== 201) throw new Error(`${url}: ${res.status} ${body}`);
  await pc.setRemoteDescription({ type: "answer", sdp: body });
  return res.headers.get("location") ?? "";
}

export function whepViewer(): { pc: RTCPeerConnection } {
  const pc = clientPeer();
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  return { pc };
}

export function whipPublisher(): { pc: RTCPeerConnection; track: MediaStreamTrack } {
  const pc = clientPeer();
  const track = new MediaStreamTrack({ kind: "video" });
  pc.addTransceiver(track, { direction: "sendonly" });
  return { pc, track };
}
