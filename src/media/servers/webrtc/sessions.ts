/**
 * One WHIP publisher or WHEP viewer: a werift peer connection tied to a hub path. A session that does not
 * connect within CONNECT_TIMEOUT_MS, or whose connection fails, is closed (a WHIP path is then free again).
 */
import { type RTCPeerConnection, RtpHeader, RtpPacket } from "werift";
import { AmiError } from "../../../core/errors.ts";
import type { Logger } from "../../../core/logger.ts";
import type { Hub, MediaStream } from "../../hub.ts";
import { streamToRtpH264 } from "../../protocols/webrtc/from-stream.ts";
import type { OpusTranscoder } from "../../protocols/webrtc/opus-transcode.ts";
import { RtpH264ToStream } from "../../protocols/webrtc/to-stream.ts";
import { answer, checkOffer, createPeer, type WebRtcOptions } from "./peer.ts";

const CONNECT_TIMEOUT_MS = 20_000;
const PLI_INTERVAL_MS = 500;

export interface SessionContext extends WebRtcOptions {
  hub: Hub;
  log: Logger;
  path: string;
  remote: string;
  onClose: () => void;
  /** The path's shared AAC -> Opus transcoder (started by its first subscriber). */
  opus: (stream: MediaStream) => OpusTranscoder;
}

export interface WebRtcSession {
  kind: "whip" | "whep";
  path: string;
  remote: string;
  close(): Promise<void>;
}

/** `prepare` runs before the offer is applied: werift announces remote tracks while applying it. */
async function openPeer(
  ctx: SessionContext,
  offer: string,
  prepare: (pc: RTCPeerConnection) => void = () => {},
): Promise<RTCPeerConnection> {
  const pc = createPeer(ctx);
  prepare(pc);
  try {
    await pc.setRemoteDescription({ type: "offer", sdp: offer });
  } catch (e) {
    await pc.close().catch(() => {});
    throw new AmiError("AMI_INVALID_INPUT", `invalid SDP offer: ${(e as Error).message}`);
  }
  return pc;
}

/** Close on failure or when ICE/DTLS never completes; `onConnected` runs once. */
function watch(pc: RTCPeerConnection, close: () => void, onConnected: () => void = () => {}): void {
  const timer = setTimeout(close, CONNECT_TIMEOUT_MS);
  timer.unref();
  pc.connectionStateChange.subscribe((s) => {
    if (s === "connected") {
      clearTimeout(timer);
      onConnected();
    } else if (s === "failed" || s === "closed" || s === "disconnected") {
      clearTimeout(timer);
      close();
    }
  });
}

export async function startWhip(ctx: SessionContext, offer: string): Promise<{ session: WebRtcSession; sdp: string }> {
  checkOffer(offer, "video");
  // Claim the path first: a busy path is refused before any peer exists.
  const stream = ctx.hub.publish(ctx.path, { protocol: "webrtc", remote: ctx.remote, since: Date.now() });
  let pc: RTCPeerConnection;
  let closed = false;
  let lastPli = 0;
  try {
    pc = await openPeer(ctx, offer, (pc) =>
      pc.onTrack.subscribe((track) => {
        if (track.kind !== "video") return;
        const pli = () => {
          const now = Date.now();
          if (now - lastPli < PLI_INTERVAL_MS || track.ssrc === undefined) return;
          lastPli = now;
          const receiver = pc.getTransceivers().find((t) => t.kind === "video")?.receiver;
          receiver?.sendRtcpPLI(track.ssrc).catch(() => {});
        };
        const toStream = new RtpH264ToStream(stream, pli);
        track.onReceiveRtp.subscribe((rtp) => {
          if (closed) return;
          const h = rtp.header;
          toStream.push({
            sequenceNumber: h.sequenceNumber,
            timestamp: h.timestamp,
            marker: h.marker,
            payload: rtp.payload,
          });
        });
      }),
    );
  } catch (e) {
    stream.end();
    throw e;
  }
  const session: WebRtcSession = {
    kind: "whip",
    path: ctx.path,
    remote: ctx.remote,
    async close() {
      if (closed) return;
      closed = true;
      stream.end();
      ctx.onClose();
      await pc.close().catch(() => {});
      ctx.log.info("whip publisher left", { path: ctx.path, remote: ctx.remote });
    },
  };
  for (const t of pc.getTransceivers()) t.setDirection(t.kind === "video" ? "recvonly" : "inactive");
  const close = () => void session.close();
  watch(pc, close);
  try {
    const sdp = await answer(pc, ctx);
    ctx.log.info("whip publish", { path: ctx.path, remote: ctx.remote });
    return { session, sdp };
  } catch (e) {
    close();
    throw e;
  }
}

export async function startWhep(ctx: SessionContext, offer: string): Promise<{ session: WebRtcSession; sdp: string }> {
  checkOffer(offer, "video");
  const stream = ctx.hub.get(ctx.path);
  if (!stream) throw new AmiError("M_NOT_FOUND", `no stream at '${ctx.path}'`);
  const pc = await openPeer(ctx, offer);
  const video = pc.getTransceivers().find((t) => t.kind === "video");
  // Audio only when the publisher sends AAC: it is transcoded to Opus while this viewer exists.
  const aac = stream.audioConfig !== undefined && (stream.audioConfig.data[0] ?? 0) >> 4 === 10;
  const audio = aac ? pc.getTransceivers().find((t) => t.kind === "audio") : undefined;
  for (const t of pc.getTransceivers()) t.setDirection(t === video || t === audio ? "sendonly" : "inactive");
  let unsubscribeAudio = () => {};
  const reader = stream.addReader("webrtc", ctx.remote);
  let closed = false;
  const session: WebRtcSession = {
    kind: "whep",
    path: ctx.path,
    remote: ctx.remote,
    async close() {
      if (closed) return;
      closed = true;
      reader.close();
      unsubscribeAudio();
      ctx.onClose();
      await pc.close().catch(() => {});
    },
  };
  const close = () => void session.close();
  let seq = Math.floor(Math.random() * 0x10000);
  const pump = async () => {
    const sender = video?.sender;
    if (!sender) return;
    await streamToRtpH264(reader, async (p) => {
      if (closed) return;
      const header = new RtpHeader({ sequenceNumber: seq, timestamp: p.timestamp, marker: p.marker });
      seq = (seq + 1) & 0xffff;
      await sender.sendRtp(new RtpPacket(header, p.payload));
    });
  };
  watch(pc, close, () => {
    const sender = audio?.sender;
    if (sender && !closed)
      unsubscribeAudio = ctx.opus(stream).subscribe((rtp) => void sender.sendRtp(rtp).catch(() => {}));
    pump()
      .catch((e) => ctx.log.warn("whep viewer failed", { path: ctx.path, error: (e as Error).message }))
      .finally(close);
  });
  try {
    const sdp = await answer(pc, ctx);
    ctx.log.info("whep play", { path: ctx.path, remote: ctx.remote });
    return { session, sdp };
  } catch (e) {
    close();
    throw e;
  }
}
