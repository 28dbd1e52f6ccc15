/**
 * RTCP sender reports for a WHEP viewer's tracks, from the viewer's one media clock. werift's own reports pair
 * each sender's last RTP timestamp with the wallclock time it was sent, so a track that leaves later (audio
 * through the Opus transcoder) would look captured later and the browser would skew lip-sync by that delay.
 * Ours map "now" to media time through the same clock for both tracks, so receivers line them up exactly.
 */
import {
  type RTCRtpSender,
  RtcpSenderInfo,
  RtcpSourceDescriptionPacket,
  RtcpSrPacket,
  SourceDescriptionChunk,
  SourceDescriptionItem,
} from "werift";
import { msToNtp, type ViewerClock } from "../../protocols/webrtc/av-sync.ts";

const INTERVAL_MS = 1000;

/** Replaces werift's reports on `senders`; returns the stop function. Call before the first RTP is sent. */
export function senderReports(clock: ViewerClock, senders: { sender: RTCRtpSender; kind: "audio" | "video" }[]) {
  for (const { sender } of senders) {
    // werift starts its report loop from the first RTP sent; an instance no-op keeps it from ever running.
    sender.runRtcp = async () => {};
  }
  const send = () => {
    const now = Date.now();
    for (const { sender, kind } of senders) {
      const rtp = clock.rtpAt(kind, now);
      // Counters werift keeps but does not expose in its types.
      const s = sender as unknown as { packetCount: number; octetCount: number; cname?: string };
      if (rtp === undefined || s.packetCount === 0 || sender.dtlsTransport?.state !== "connected") continue;
      const sr = new RtcpSrPacket({
        ssrc: sender.ssrc,
        senderInfo: new RtcpSenderInfo({
          ntpTimestamp: msToNtp(now),
          rtpTimestamp: rtp,
          packetCount: s.packetCount,
          octetCount: s.octetCount,
        }),
      });
      const cname = s.cname;
      const sdes = cname
        ? [
            new RtcpSourceDescriptionPacket({
              chunks: [
                new SourceDescriptionChunk({
                  source: sender.ssrc,
                  items: [new SourceDescriptionItem({ type: 1, text: cname })],
                }),
              ],
            }),
          ]
        : [];
      sender.dtlsTransport.sendRtcp([sr, ...sdes]).catch(() => {});
    }
  };
  const timer = setInterval(send, INTERVAL_MS);
  timer.unref();
  // The first report soon after media starts: receivers cannot sync the tracks before one per track arrived.
  const first = setTimeout(send, 200);
  first.unref();
  return () => {
    clearInterval(timer);
    clearTimeout(first);
  };
}
