import assert from "node:assert/strict";
import { test } from "node:test";
import { parseTransport, type RtspError, RtspParser } from "./message.ts";
import { parseSdp } from "./sdp.ts";

const limits = { maxHead: 1024, maxHeaders: 8, maxBody: 4096 };

test("requests and $ frames are split from one byte stream, in any chunking", () => {
  const sdp = "v=0\r\nm=video 0 RTP/AVP 96\r\n";
  const bytes = Buffer.concat([
    Buffer.from(`ANNOUNCE rtsp://h/live/a RTSP/1.0\r\nCSeq: 2\r\nContent-Length: ${sdp.length}\r\n\r\n${sdp}`),
    Buffer.from([0x24, 1, 0, 3, 9, 8, 7]),
    Buffer.from("OPTIONS * RTSP/1.0\r\nCSeq: 3\r\n\r\n"),
  ]);
  for (const step of [1, 7, bytes.length]) {
    const p = new RtspParser(limits);
    const out = [];
    for (let i = 0; i < bytes.length; i += step) out.push(...p.push(bytes.subarray(i, i + step)));
    assert.equal(out.length, 3);
    const [a, f, o] = out as [any, any, any];
    assert.equal(a.method, "ANNOUNCE");
    assert.equal(a.headers.get("cseq"), "2");
    assert.equal(a.body.toString(), sdp);
    assert.deepEqual([f.channel, [...f.data]], [1, [9, 8, 7]]);
    assert.equal(o.url, "*");
  }
});

test("oversized heads, too many headers, big bodies, garbage and RTSP/2.0 are errors with a status", () => {
  const status = (s: string) => {
    try {
      new RtspParser(limits).push(Buffer.from(s));
      return 0;
    } catch (e) {
      return (e as RtspError).status;
    }
  };
  assert.equal(status(`OPTIONS * RTSP/1.0\r\nX: ${"a".repeat(2000)}`), 431);
  assert.equal(status(`OPTIONS * RTSP/1.0\r\n${"X: y\r\n".repeat(9)}\r\n`), 431);
  assert.equal(status("ANNOUNCE * RTSP/1.0\r\nContent-Length: 5000\r\n\r\n"), 413);
  assert.equal(status("\x16\x03\x01garbage"), 400);
  assert.equal(status("GET / HTTP/1.1\r\n\r\n"), 400);
  assert.equal(status("OPTIONS * RTSP/2.0\r\n\r\n"), 505);
});

test("Transport: TCP interleaved, UDP client ports, record mode; multicast only is refused later", () => {
  assert.deepEqual(parseTransport("RTP/AVP/TCP;unicast;interleaved=2-3;mode=record"), {
    tcp: true,
    multicast: false,
    interleaved: [2, 3],
    clientPort: undefined,
    record: true,
  });
  assert.deepEqual(parseTransport("RTP/AVP;unicast;client_port=5000-5001")?.clientPort, [5000, 5001]);
  assert.equal(parseTransport("RTP/AVP;multicast")?.multicast, true);
  assert.equal(parseTransport("RAW/RAW/UDP;unicast"), undefined);
});

test("SDP tracks: codec, clock, channels, fmtp and control", () => {
  const t = parseSdp(
    [
      "v=0",
      "m=video 0 RTP/AVP 96",
      "a=rtpmap:96 H264/90000",
      "a=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z0LAHtkA,aM4PyA==",
      "a=control:streamid=0",
      "m=audio 0 RTP/AVP 97",
      "a=rtpmap:97 MPEG4-GENERIC/44100/2",
      "a=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3; config=1210",
      "a=control:streamid=1",
      "m=application 0 RTP/AVP 107",
    ].join("\r\n"),
  );
  assert.equal(t.length, 2);
  assert.equal(t[0]?.codec, "H264");
  assert.equal(t[0]?.fmtp.get("sprop-parameter-sets"), "Z0LAHtkA,aM4PyA==");
  assert.equal(t[0]?.control, "streamid=0");
  assert.deepEqual([t[1]?.codec, t[1]?.clockRate, t[1]?.channels, t[1]?.fmtp.get("config")], ["AAC", 44100, 2, "1210"]);
});

test("Transport: interleaved channels must fit the $ frame's byte, client ports must be sendable (1..65535)", () => {
  assert.deepEqual(parseTransport("RTP/AVP/TCP;unicast;interleaved=300-301")?.interleaved, undefined);
  assert.deepEqual(parseTransport("RTP/AVP/TCP;unicast;interleaved=255")?.interleaved, undefined, "255 and 256");
  assert.deepEqual(parseTransport("RTP/AVP/TCP;unicast;interleaved=254")?.interleaved, [254, 255]);
  assert.deepEqual(parseTransport("RTP/AVP/TCP;unicast;interleaved=1.5-2")?.interleaved, undefined);
  for (const bad of ["0-1", "5000-0", "0", "65535", "70000-70001", "-1", "5000-x"])
    assert.equal(parseTransport(`RTP/AVP;unicast;client_port=${bad}`)?.clientPort, undefined, bad);
  assert.deepEqual(parseTransport("RTP/AVP;unicast;client_port=5000-5001")?.clientPort, [5000, 5001]);
  assert.deepEqual(parseTransport("RTP/AVP;unicast;client_port=5000")?.clientPort, [5000, 5001]);
});

test("a $ frame or a body arriving a byte at a time is joined once, not copied again for every byte", () => {
  const p = new RtspParser({ maxHead: 1024, maxHeaders: 8, maxBody: 65535 });
  const frame = Buffer.concat([Buffer.from([0x24, 3, 0xff, 0xff]), Buffer.alloc(0xffff, 9)]);
  const body = Buffer.alloc(60_000, 0x61);
  const req = Buffer.concat([
    Buffer.from(`SET_PARAMETER * RTSP/1.0\r\nCSeq: 4\r\nContent-Length: ${body.length}\r\n\r\n`),
    body,
  ]);
  const bytes = Buffer.concat([frame, req, frame]);
  const concat = Buffer.concat;
  let copied = 0;
  Buffer.concat = (list: readonly Uint8Array[], total?: number) => {
    const b = concat(list, total);
    copied += b.length;
    return b;
  };
  const out = [];
  try {
    for (let i = 0; i < bytes.length; i++) out.push(...p.push(bytes.subarray(i, i + 1)));
  } finally {
    Buffer.concat = concat;
  }
  assert.equal(out.length, 3);
  assert.equal((out[0] as { data: Buffer }).data.length, 0xffff);
  assert.equal((out[1] as { body: Buffer }).body.length, body.length);
  assert.equal((out[2] as { channel: number }).channel, 3);
  // Each byte costs a copy of the head only (at most maxHead per byte); the frames and body are joined whole.
  assert.ok(copied < 10 * bytes.length, `${copied} bytes copied for ${bytes.length} received`);
  assert.equal(p.held, 0);
});
