/**
 * One WHIP publisher or WHEP viewer: a werift peer connection tied to a hub path. A session that does not
 * connect within CONNECT_TIMEOUT_MS, or whose connection fails, is closed (a WHIP path is then free again).
 */
import {
  type RTCPeerConnection,
  type RTCRtpSender,
  RtcpPayloadSpecificFeedback,
  RtcpSrPacket,
  RtpHeader,
  RtpPacket,
} from "werift";
import { AmiError } from "../../../core/errors.ts";
import type { Logger } from "../../../core/logger.ts";
import type { Frame } from "../../frame.ts";
import type { Hub, MediaStream } from "../../hub.ts";
import { isOpus } from "../../protocols/flv/ex-audio.ts";
import { SOUND_AAC, soundFormat } from "../../protocols/flv/tag.ts";
import type { RtpIn } from "../../protocols/rtp/h264.ts";
import { PublisherClock, ViewerClock } from "../../protocols/webrtc/av-sync.ts";
import { type Resync, type RtpOut, type RtpSinks, streamToRtp } from "../../protocols/webrtc/from-stream.ts";
import type { OpusTranscoder } from "../../protocols/webrtc/opus-transcode.ts";
import { RtpH264ToStream, RtpOpusToStream } from "../../protocols/webrtc/to-stream.ts";
import type { VideoCheck } from "../../protocols/webrtc/video-check.ts";
import type { VideoReencoder } from "../../protocols/webrtc/video-transcode.ts";
import { answer, checkOffer, createPeer, offersH265, type WebRtcOptions, type WebRtcVideoCodec } from "./peer.ts";
import { senderReports } from "./sender-reports.ts";

const CONNECT_TIMEOUT_MS = 20_000;
const PLI_INTERVAL_MS = 500;
/** RTCP payload-specific feedback message types (RFC 4585 FMT 1, RFC 5104 FMT 4). */
const PSFB_PLI = 1;
const PSFB_FIR = 4;
/** A viewer of a path just published waits this long at most for the video check's verdict. */
const VERDICT_WAIT_MS = 3000;

export interface SessionContext extends WebRtcOptions {
  hub: Hub;
  log: Logger;
  path: string;
  remote: string;
  onClose: () => void;
  /** The path's shared AAC -> Opus transcoder (started by its first subscriber). */
  opus: (stream: MediaStream) => OpusTranscoder;
  /** The path's video check: passthrough, or re-encode (B-frames, a profile browsers cannot decode). */
  videoCheck: (stream: MediaStream) => VideoCheck;
  /** The path's shared H.264 re-encoder for WebRTC viewers. */
  reencoder: (stream: MediaStream) => VideoReencoder;
  /** Keyframe requests to WHIP publishers, by path. */
  keyframeRequests: Map<string, () => void>;
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
  video: WebRtcVideoCodec = "h264",
): Promise<RTCPeerConnection> {
  const pc = createPeer(ctx, video);
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
  const clock = new PublisherClock();
  let audioTaken = false;
  try {
    pc = await openPeer(ctx, offer, (pc) =>
      pc.onTrack.subscribe((track) => {
        const rtpIn = (push: (p: RtpIn) => void) =>
          track.onReceiveRtp.subscribe((rtp) => {
            if (closed) return;
            const h = rtp.header;
            push({ sequenceNumber: h.sequenceNumber, timestamp: h.timestamp, marker: h.marker, payload: rtp.payload });
          });
        // Sender reports pair each track's RTP clock with the publisher's wallclock: that is how audio is placed
        // on the video's timeline.
        const kind = track.kind === "audio" ? "audio" : "video";
        track.onReceiveRtcp.subscribe((p) => {
          if (p.type === RtcpSrPacket.type)
            clock.senderReport(kind, p.senderInfo.ntpTimestamp, p.senderInfo.rtpTimestamp);
        });
        if (track.kind === "audio") {
          // One audio track (a second audio m-line is declined below).
          if (audioTaken) return;
          audioTaken = true;
          const toStream = new RtpOpusToStream(stream, clock);
          rtpIn((p) => toStream.push(p));
          return;
        }
        if (track.kind !== "video") return;
        const pli = () => {
          const now = Date.now();
          if (now - lastPli < PLI_INTERVAL_MS || track.ssrc === undefined) return;
          lastPli = now;
          const receiver = pc.getTransceivers().find((t) => t.kind === "video")?.receiver;
          receiver?.sendRtcpPLI(track.ssrc).catch(() => {});
        };
        ctx.keyframeRequests.set(ctx.path, pli);
        const toStream = new RtpH264ToStream(stream, pli, clock);
        rtpIn((p) => toStream.push(p));
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
      ctx.keyframeRequests.delete(ctx.path);
      ctx.onClose();
      await pc.close().catch(() => {});
      ctx.log.info("whip publisher left", { path: ctx.path, remote: ctx.remote });
    },
  };
  // Video and the first audio m-line are taken; anything else (a second audio, data) is declined.
  const firstAudio = pc.getTransceivers().find((t) => t.kind === "audio");
  for (const t of pc.getTransceivers())
    t.setDirection(t.kind === "video" || t === firstAudio ? "recvonly" : "inactive");
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
  // A viewer that offers H.265 may get an H.265 path as it is (when it has no B-frames); others get H.264.
  const check = ctx.videoCheck(stream);
  const takesH265 = offersH265(offer);
  const verdict = await check.settled(VERDICT_WAIT_MS, { h265: takesH265 });
  const codec: WebRtcVideoCodec = takesH265 && check.hevc && verdict.mode !== "reencode" ? "h265" : "h264";
  const pc = await openPeer(ctx, offer, undefined, codec);
  const video = pc.getTransceivers().find((t) => t.kind === "video");
  // Opus from a WHIP publisher is passed through; AAC is transcoded to Opus while this viewer exists.
  const opus = isOpus(stream.audioConfig);
  const aac = stream.audioConfig !== undefined && soundFormat(stream.audioConfig) === SOUND_AAC;
  const audio = opus || aac ? pc.getTransceivers().find((t) => t.kind === "audio") : undefined;
  for (const t of pc.getTransceivers()) t.setDirection(t === video || t === audio ? "sendonly" : "inactive");
  // One media stream id for both tracks: browsers lip-sync only tracks of the same stream.
  for (const t of [video, audio]) if (t) t.sender.streamId = ctx.path;
  const clock = new ViewerClock();
  const senders = [video, audio].flatMap((t) => (t ? [{ sender: t.sender, kind: t.kind as "audio" | "video" }] : []));
  const stopReports = senderReports(clock, senders);
  let unsubscribeAudio = () => {};
  // At the live edge: the cached GOP sent as it is would keep a WebRTC player that far behind (it shows each
  // frame at its time), so streamToRtp packs it into a catch-up burst at the live edge's time (see there).
  // Video that browsers cannot play as it is comes from the path's shared re-encoder (audio through it as it is).
  const lease = verdict.mode === "reencode" ? ctx.reencoder(stream).acquire(ctx.remote) : undefined;
  // A passed-through path is read from its cached GOP: the viewer starts at once on its keyframe (streamToRtp
  // packs the frames older than the live edge into a catch-up burst) instead of waiting for the next keyframe.
  const reader = lease?.reader ?? stream.addReader("webrtc", ctx.remote, { fromKeyframe: true });
  let closed = false;
  const session: WebRtcSession = {
    kind: "whep",
    path: ctx.path,
    remote: ctx.remote,
    async close() {
      if (closed) return;
      closed = true;
      reader.close();
      lease?.release();
      unsubscribeAudio();
      stopReports();
      ctx.onClose();
      await pc.close().catch(() => {});
    },
  };
  const close = () => void session.close();
  // A viewer that lost a picture says so (PLI, or FIR): the re-encoder makes a keyframe for it (rate-limited); a
  // passed-through WHIP publisher is asked for one (its own rate limit); other sources keyframe on their own.
  const keyframe = () => {
    if (lease) lease.keyframe();
    else ctx.keyframeRequests.get(ctx.path)?.();
  };
  // Passed through, a lost picture is answered at once from the cached GOP (at most every PLI_INTERVAL_MS).
  const resync: Resync = { pending: false, gop: () => stream.cachedGop(), sent: 0 };
  let lastResync = 0;
  const onFeedback = (p: { type: number }) => {
    if (closed || !video || p.type !== RtcpPayloadSpecificFeedback.type) return;
    const fb = (p as RtcpPayloadSpecificFeedback).feedback;
    const fmt = fb.count;
    if (fmt !== PSFB_PLI && fmt !== PSFB_FIR) return;
    if ("mediaSsrc" in fb && fb.mediaSsrc !== video.sender.ssrc && fb.mediaSsrc !== 0) return;
    keyframe();
    const now = Date.now();
    if (!lease && now - lastResync >= PLI_INTERVAL_MS) {
      lastResync = now;
      resync.pending = true;
    }
  };
  // werift routes feedback by its sender SSRC first: from a peer that announced SSRCs for its receiving side
  // (werift does; Chromium does not) a PLI reaches this transceiver's receiver instead of its sender.
  video?.sender.onRtcp.subscribe(onFeedback);
  video?.receiver.onRtcp.subscribe(onFeedback);
  const rtpSink = (sender: RTCRtpSender) => {
    let seq = Math.floor(Math.random() * 0x10000);
    return async (p: RtpOut) => {
      if (closed) return;
      const header = new RtpHeader({ sequenceNumber: seq, timestamp: p.timestamp, marker: p.marker });
      seq = (seq + 1) & 0xffff;
      await sender.sendRtp(new RtpPacket(header, p.payload));
    };
  };
  watch(pc, close, () => {
    if (!video || closed) return close();
    const sinks: RtpSinks = { video: rtpSink(video.sender), videoCodec: codec };
    if (audio && opus) sinks.audio = rtpSink(audio.sender);
    else if (audio) {
      const send = rtpSink(audio.sender);
      unsubscribeAudio = ctx.opus(stream).subscribe((p) => {
        if (clock.base !== undefined)
          send({ payload: p.payload, timestamp: clock.audio(p.ms), marker: false }).catch(() => {});
      });
    }
    // A viewer of the re-encoder starts at the next keyframe: ask for one now rather than wait for the source's
    // GOP. A passed-through path's viewer starts on the cached one (what is queued now is its catch-up).
    const head: Frame[] = [];
    if (!lease) for (let f = reader.poll(); f; f = reader.poll()) head.push(f);
    if (lease || !head.some((f) => f.keyframe)) keyframe();
    streamToRtp(reader, clock, sinks, head, lease ? undefined : resync)
      .catch((e) => ctx.log.warn("whep viewer failed", { path: ctx.path, error: (e as Error).message }))
      .finally(close);
  });
  try {
    const sdp = await answer(pc, ctx);
    ctx.log.info("whep play", { path: ctx.path, remote: ctx.remote, video: verdict.mode, codec });
    return { session, sdp };
  } catch (e) {
    close();
    throw e;
  }
}
