/**
 * Fuzzing what unauthenticated peers reach first: random bytes and mutated valid messages fed to the RTSP
 * request parser and SDP reader, the RTP/RTCP parsers and depacketizers, the SRT handshake and control parsers
 * and a live SRT session, and the MPEG-TS demuxer. Nothing may throw except the parser's own RtspError (which
 * the connection answers), and what each keeps stays bounded. Seeded: a failure names its seed and repeats.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { SrtConnection } from "../servers/srt/connection.ts";
import { decodeStreamId, parseHandshake } from "../servers/srt/handshake.ts";
import { decodeLoss } from "../servers/srt/packet.ts";
import { audioFrame } from "./flv/tag.ts";
import { TsDemuxer } from "./mpegts/demux.ts";
import { TsMuxer } from "./mpegts/mux.ts";
import { AacDepacketizer } from "./rtp/aac.ts";
import { H264Depacketizer } from "./rtp/h264.ts";
import { H265Depacketizer } from "./rtp/h265.ts";
import { parseRtp, parseSenderReport } from "./rtp/packet.ts";
import { parseTransport, RtspError, RtspParser } from "./rtsp/message.ts";
import { parseSdp } from "./rtsp/sdp.ts";
import { checkTracks } from "./rtsp/to-stream.ts";
import { avcConfigFrame, avcConfigRecord, avcNaluFrame } from "./webrtc/avc-tags.ts";

const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed);

/** xorshift32: reproducible without a dependency. */
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
  return {
    int: (n: number) => next() % n,
    bytes: (n: number) => {
      const b = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; i++) b[i] = next() & 0xff;
      return b;
    },
  };
}
type Rng = ReturnType<typeof rng>;

/** A copy of `b` with a few bytes flipped, set to edge values, cut short or extended. */
function mutate(r: Rng, b: Buffer): Buffer {
  let out = Buffer.from(b);
  const n = 1 + r.int(4);
  for (let k = 0; k < n; k++) {
    const op = r.int(6);
    if (out.length === 0) out = r.bytes(1 + r.int(16));
    const i = r.int(out.length);
    if (op === 0) out[i] = r.int(256);
    else if (op === 1) out[i] = [0, 0xff, 0x7f, 0x80][r.int(4)] as number;
    else if (op === 2) out = out.subarray(0, i);
    else if (op === 3) out = Buffer.concat([out, r.bytes(r.int(64))]);
    else if (op === 4 && i + 4 <= out.length)
      out.writeUInt32BE([0, 0xffffffff, 0x7fffffff, 0x80000000][r.int(4)] as number, i);
    else out[i] = (out[i] as number) ^ (1 << r.int(8));
  }
  return out;
}

const ROUNDS = Number(process.env.FUZZ_ROUNDS ?? 3000);

test("RTSP parser, Transport and SDP: random and mutated requests throw nothing but RtspError; held bytes stay bounded", () => {
  const r = rng(SEED);
  const sdp =
    "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n" +
    "a=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z0IAHpWoLQSZ,aM4G4g==\r\na=control:trackID=0\r\n" +
    "m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\n" +
    "a=fmtp:97 streamtype=5;mode=AAC-hbr;config=1210;sizelength=13;indexlength=3;indexdeltalength=3\r\n";
  const valid = [
    Buffer.from(
      `ANNOUNCE rtsp://h/live/a RTSP/1.0\r\nCSeq: 2\r\nContent-Type: application/sdp\r\nContent-Length: ${sdp.length}\r\n\r\n${sdp}`,
    ),
    Buffer.from(
      "SETUP rtsp://h/live/a/trackID=0 RTP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n",
    ),
    Buffer.from("OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
    Buffer.from([0x24, 0, 0, 12, 0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1]),
  ];
  const limits = { maxHead: 16 * 1024, maxHeaders: 64, maxBody: 64 * 1024 };
  for (let round = 0; round < ROUNDS; round++) {
    const p = new RtspParser(limits);
    const input = r.int(4) === 0 ? r.bytes(r.int(400)) : mutate(r, valid[r.int(valid.length)] as Buffer);
    try {
      for (let i = 0; i < input.length; ) {
        const step = 1 + r.int(64);
        for (const m of p.push(input.subarray(i, i + step))) {
          if ("method" in m) {
            parseTransport(m.headers.get("transport"));
            const tracks = parseSdp(m.body.toString("utf8"));
            try {
              checkTracks(tracks);
            } catch {}
          }
        }
        i += step;
      }
    } catch (e) {
      if (!(e instanceof RtspError)) assert.fail(`seed ${SEED} round ${round}: ${(e as Error).stack}`);
    }
    assert.ok(p.held <= limits.maxHead + limits.maxBody + 4 + 65535, `held ${p.held}`);
  }
});

test("RTP/RTCP parsers and the H.264, H.265 and AAC depacketizers never throw on random or mutated packets", () => {
  const r = rng(SEED + 1);
  const h264 = new H264Depacketizer();
  const h265 = new H265Depacketizer();
  const aac = new AacDepacketizer();
  const aacOdd = new AacDepacketizer({ sizeLength: 1, indexLength: 0, indexDeltaLength: 0 });
  const rtp = Buffer.from([0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0x7c, 0x85, 1, 2, 3]);
  const sr = Buffer.alloc(28);
  sr[0] = 0x80;
  sr[1] = 200;
  sr.writeUInt16BE(6, 2);
  let seq = 0;
  for (let round = 0; round < ROUNDS * 4; round++) {
    const b = r.int(3) === 0 ? r.bytes(r.int(80)) : mutate(r, r.int(2) ? rtp : sr);
    try {
      parseSenderReport(b);
      const p = parseRtp(b);
      if (!p) continue;
      const q = { ...p, sequenceNumber: r.int(8) ? seq++ & 0xffff : p.sequenceNumber };
      h264.push(q);
      h265.push(q);
      aac.push(q.payload, q.timestamp, q.marker);
      aacOdd.push(q.payload, q.timestamp, q.marker);
    } catch (e) {
      assert.fail(`seed ${SEED} round ${round}: ${(e as Error).stack}`);
    }
  }
});

test("SRT handshake, loss lists and an established session take random and mutated datagrams without throwing", () => {
  const r = rng(SEED + 2);
  const hs = Buffer.alloc(64 + 16 + 4 + 8);
  hs.writeUInt32BE(0x80000000, 0);
  hs.writeUInt32BE(5, 16);
  hs.writeUInt32BE(0xffffffff, 36);
  hs.writeUInt16BE(1, 64);
  hs.writeUInt16BE(3, 66);
  hs.writeUInt16BE(5, 80);
  hs.writeUInt16BE(2, 82);
  let now = 1_000_000;
  let closed = 0;
  const open = (onData: boolean) =>
    new SrtConnection({
      isn: 1000,
      rcvLatencyMs: 20,
      sndLatencyMs: 20,
      rcvBufferPackets: 256,
      sndBufferPackets: 256,
      km: undefined,
      now: () => now,
      peerSocketId: 7,
      send: () => {},
      onData: onData ? () => {} : undefined,
      onClose: () => closed++,
      budget: { take: () => true, give: () => {} },
    });
  let rcv = open(true);
  let snd = open(false);
  const ctrl = (type: number, words: number[]) => {
    const b = Buffer.alloc(16 + words.length * 4);
    b.writeUInt32BE((0x80000000 | (type << 16)) >>> 0, 0);
    for (const [i, w] of words.entries()) b.writeUInt32BE(w >>> 0, 16 + i * 4);
    return b;
  };
  const samples = [
    hs,
    ctrl(2, [1010, 1000, 100, 8192, 1, 1, 1]),
    ctrl(3, [0x80000000 | 1000, 1100, 1200]),
    ctrl(6, []),
    ctrl(7, [0, 1010]),
    ctrl(0x7fff, [0x12202900]),
    Buffer.concat([Buffer.from([0, 0, 3, 0xe8, 0xc0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7]), Buffer.alloc(188, 0x47)]),
  ];
  for (let round = 0; round < ROUNDS * 4; round++) {
    const b = r.int(4) === 0 ? r.bytes(r.int(120)) : mutate(r, samples[r.int(samples.length)] as Buffer);
    try {
      const h = parseHandshake(b);
      if (h?.streamId) decodeStreamId(Buffer.from(h.streamId));
      decodeLoss(b);
      rcv.input(b);
      snd.input(b);
      if (round % 7 === 0) snd.write(r.bytes(1316));
      if (round % 5 === 0) {
        now += 10_000;
        rcv.tick();
        snd.tick();
      }
      if (rcv.closed) rcv = open(true);
      if (snd.closed) snd = open(false);
    } catch (e) {
      assert.fail(`seed ${SEED} round ${round}: ${(e as Error).stack}`);
    }
    assert.ok(rcv.buffered.rcv <= 256 && snd.buffered.snd <= 256);
  }
  assert.ok(closed >= 0);
});

test("the MPEG-TS demuxer takes random and mutated TS (from the muxer) without throwing; its buffers stay bounded", () => {
  const r = rng(SEED + 3);
  const mux = new TsMuxer();
  const sps = Buffer.from([0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x47, 0xfe, 0xc8]);
  const pps = Buffer.from([0x68, 0xce, 0x3c, 0x80]);
  mux.frame(avcConfigFrame(0, avcConfigRecord(sps, pps)));
  mux.frame(audioFrame(0, Buffer.from([0xaf, 0, 0x12, 0x10])));
  const ts: Buffer[] = [];
  for (let i = 0; i < 40; i++) {
    ts.push(
      mux.frame(
        avcNaluFrame(
          i * 40,
          [Buffer.concat([Buffer.from([i % 10 ? 0x41 : 0x65]), r.bytes(300 + r.int(3000))])],
          i % 10 === 0,
        ),
      ),
    );
    ts.push(mux.frame(audioFrame(i * 40, Buffer.concat([Buffer.from([0xaf, 1]), r.bytes(200)]))));
  }
  const stream = Buffer.concat(ts);
  assert.ok(stream.length > 188 * 50);
  let frames = 0;
  for (let round = 0; round < ROUNDS / 10; round++) {
    const d = new TsDemuxer(() => frames++, { maxPesBytes: 256 * 1024 });
    const input = Buffer.from(stream);
    // Mutate a few packets' headers and payloads, and cut or drop some.
    for (let k = 0; k < 1 + r.int(30); k++) {
      const at = r.int(input.length);
      const m = mutate(r, input.subarray(at, at + 8));
      m.copy(input, at, 0, Math.min(m.length, input.length - at));
    }
    try {
      for (let i = 0; i < input.length; ) {
        const step = 1 + r.int(2000);
        d.push(input.subarray(i, i + step));
        i += step;
      }
      d.push(r.bytes(r.int(1000)));
      d.end();
    } catch (e) {
      assert.fail(`seed ${SEED} round ${round}: ${(e as Error).stack}`);
    }
  }
  assert.ok(frames > 0, "mutated streams still yield frames");
});
