/** A WHIP/WHEP client on werift (WebRTC in Node): non-trickle offer, POST, answer. Loopback candidates only. */
import { spawn } from "node:child_process";
import {
  MediaStreamTrack,
  RTCPeerConnection,
  RTCRtpCodecParameters,
  type RTCRtpSender,
  RtcpSenderInfo,
  RtcpSrPacket,
} from "werift";
import { type AccessUnit, H264Depacketizer } from "../../../src/media/protocols/rtp/h264.ts";
import { H265Depacketizer } from "../../../src/media/protocols/rtp/h265.ts";
import { msToNtp, ntpToMs } from "../../../src/media/protocols/webrtc/av-sync.ts";

const h264 = () =>
  new RTCRtpCodecParameters({
    mimeType: "video/H264",
    clockRate: 90000,
    rtcpFeedback: [{ type: "nack" }, { type: "nack", parameter: "pli" }],
    parameters: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
  });

/** `h265`: offer H.265 before H.264, as a browser with an H.265 WebRTC decoder does. */
export function clientPeer(o: { h265?: boolean } = {}): RTCPeerConnection {
  const h265 = new RTCRtpCodecParameters({
    mimeType: "video/H265",
    clockRate: 90000,
    rtcpFeedback: [{ type: "nack" }, { type: "nack", parameter: "pli" }],
  });
  return new RTCPeerConnection({
    codecs: {
      video: o.h265 ? [h265, h264()] : [h264()],
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

export function whepViewer(o: { h265?: boolean } = {}): { pc: RTCPeerConnection } {
  const pc = clientPeer(o);
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  return { pc };
}

/**
 * A WHIP publisher with a video track and, unless `audio` is false, an audio track (the server then declares
 * audio on the path from the start, so a publisher that negotiates audio should send it). `send` forwards an RTP packet (e.g. from ffmpeg's `-f rtp`)
 * and remembers when it left; sender reports are ours, built from that, as a browser's are from its capture
 * clock: werift's own put decimal digits of the seconds in the NTP fraction field (0.25 s becomes 25 / 2^32 s),
 * which is useless for lip-sync.
 */
export function whipPublisher(o: { audio?: boolean } = {}) {
  const pc = clientPeer();
  const track = new MediaStreamTrack({ kind: "video" });
  const audio = new MediaStreamTrack({ kind: "audio" });
  const tv = pc.addTransceiver(track, { direction: "sendonly" });
  const ta = o.audio === false ? undefined : pc.addTransceiver(audio, { direction: "sendonly" });
  const last = new Map<RTCRtpSender, { ts: number; at: number }>();
  for (const t of [tv, ta]) if (t) t.sender.runRtcp = async () => {};
  const timer = setInterval(() => {
    for (const [sender, l] of last) {
      const senderInfo = new RtcpSenderInfo({ ntpTimestamp: msToNtp(l.at), rtpTimestamp: l.ts });
      sender.dtlsTransport?.sendRtcp([new RtcpSrPacket({ ssrc: sender.ssrc, senderInfo })]).catch(() => {});
    }
  }, 500);
  timer.unref();
  pc.connectionStateChange.subscribe((s) => s === "closed" && clearInterval(timer));
  const send = (kind: "audio" | "video", rtp: Buffer) => {
    if (rtp.length < 12) return;
    const t = kind === "audio" ? ta : tv;
    if (!t) return;
    (kind === "audio" ? audio : track).writeRtp(rtp);
    last.set(t.sender, { ts: rtp.readUInt32BE(4), at: Date.now() });
  };
  return { pc, track, audio, send };
}

export interface SenderReport {
  ntpMs: number;
  rtp: number;
}

/**
 * A WHEP viewer that keeps what it receives: H.264 access units (depacketized), Opus packets, and the last RTCP
 * sender report of each track (to map RTP times to the sender's wallclock). `onUnit` sees each unit as it
 * completes (the latency bench pipes them into a decoder).
 */
export function whepReceiver(onUnit: (u: AccessUnit) => void = () => {}, o: { h265?: boolean } = {}) {
  const { pc } = whepViewer(o);
  let depack: H264Depacketizer | H265Depacketizer = new H264Depacketizer();
  /** The video codec the server answered with (known once the track arrives). */
  const video: { codec?: string } = {};
  const units: AccessUnit[] = [];
  const audio: { timestamp: number; payload: Buffer }[] = [];
  const sr: { audio?: SenderReport; video?: SenderReport } = {};
  pc.onTrack.subscribe((track) => {
    const kind = track.kind === "audio" ? "audio" : "video";
    if (kind === "video") {
      video.codec = track.codec?.mimeType.toLowerCase();
      if (video.codec === "video/h265") depack = new H265Depacketizer();
    }
    track.onReceiveRtcp.subscribe((p) => {
      if (p.type === RtcpSrPacket.type)
        sr[kind] = { ntpMs: ntpToMs(p.senderInfo.ntpTimestamp), rtp: p.senderInfo.rtpTimestamp };
    });
    track.onReceiveRtp.subscribe((rtp) => {
      const h = rtp.header;
      if (kind === "audio") {
        audio.push({ timestamp: h.timestamp, payload: rtp.payload });
        return;
      }
      for (const u of depack.push({ ...h, payload: rtp.payload })) {
        units.push(u);
        onUnit(u);
      }
    });
  });
  /** The sender's wallclock (ms) of an RTP timestamp, through that track's last sender report. */
  const wallclock = (kind: "audio" | "video", ts: number): number | undefined => {
    const r = sr[kind];
    if (!r) return undefined;
    return r.ntpMs + ((ts - r.rtp) | 0) / (kind === "audio" ? 48 : 90);
  };
  return { pc, depack, units, audio, sr, wallclock, video };
}

/**
 * Annex B bytes of an access unit: a start code before every NAL unit, and an access unit delimiter before the
 * unit or after it. The delimiter gives decoders an explicit boundary (ffmpeg's parser merges some consecutive
 * tiny units without one); after it, a streaming decoder need not wait for the next unit to know this one ended.
 */
export const annexB = (u: AccessUnit, delimiter: "before" | "after" = "before"): Buffer => {
  const nals = u.nals.flatMap((n) => [START, n]);
  return Buffer.concat(delimiter === "before" ? [AUD, ...nals] : [...nals, AUD]);
};

const START = Buffer.from([0, 0, 0, 1]);
const AUD = Buffer.from([0, 0, 0, 1, 0x09, 0xf0]);

/** ffprobe decoding an Annex B H.264 file: frames decoded and anything it printed as an error. */
export async function decodeH264(file: string): Promise<{ codec: string; frames: number; errors: string }> {
  const args = ["-v", "error", "-count_frames", "-select_streams", "v:0"];
  const proc = spawn("ffprobe", [...args, "-show_entries", "stream=codec_name,nb_read_frames", "-of", "json", file]);
  let out = "";
  let errors = "";
  proc.stdout.on("data", (d) => {
    out += d;
  });
  proc.stderr.on("data", (d) => {
    errors += d;
  });
  await new Promise((r) => proc.once("close", r));
  const s = JSON.parse(out).streams[0];
  return { codec: s?.codec_name, frames: Number(s?.nb_read_frames), errors };
}
