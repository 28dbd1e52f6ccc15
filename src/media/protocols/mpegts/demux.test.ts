import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseAvcConfig } from "../../codecs/avc.ts";
import { parseHevcConfig } from "../../codecs/hevc.ts";
import type { Frame } from "../../frame.ts";
import { parseOpusHead } from "../flv/ex-audio.ts";
import { parseVideoTag } from "../flv/ex-video.ts";
import { TsDemuxer } from "./demux.ts";
import { demuxAll, ffmpegTs, probePackets, run } from "./testing.ts";

const media = (fs: Frame[], kind: Frame["kind"]) => fs.filter((f) => f.kind === kind && !f.config);
const cts = (f: Frame) => parseVideoTag(f.data)?.cts ?? Number.NaN;

function assertMonotonic(fs: Frame[]): void {
  for (let i = 1; i < fs.length; i++)
    assert.ok((fs[i] as Frame).dts >= (fs[i - 1] as Frame).dts, `dts goes back at ${i}`);
}

describe("TsDemuxer on ffmpeg's MPEG-TS", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "ami-tsd-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Demux a clip and compare with what ffprobe reads from the same bytes. */
  async function check(clip: "h264-aac" | "h265-opus") {
    const ts = await ffmpegTs(clip);
    const file = join(dir, `${clip}.ts`);
    await writeFile(file, ts);
    const { frames, errors } = demuxAll(ts);
    assert.deepEqual(errors, []);
    const [pv, pa] = await Promise.all([probePackets(file, "v"), probePackets(file, "a")]);
    const v = media(frames, "video");
    const a = media(frames, "audio");
    assert.equal(v.length, pv.length, "video frames");
    assert.equal(a.length, pa.length, "audio frames");
    assert.equal(v.filter((f) => f.keyframe).length, pv.filter((p) => p.key).length, "keyframes");
    assert.ok(v[0]?.keyframe, "starts on a keyframe");
    assertMonotonic(v);
    assertMonotonic(a);
    // Composition offsets as ffprobe sees them (B-frames: some positive, none negative).
    const want = pv.map((p) => Math.round((p.pts - p.dts) / 90));
    const got = v.map(cts);
    for (let i = 0; i < want.length; i++)
      assert.ok(Math.abs((got[i] as number) - (want[i] as number)) <= 1, `cts ${i}`);
    assert.ok(
      got.some((c) => c > 0),
      "B-frames give composition offsets",
    );
    // Decode times follow ffprobe's, rebased to the first one.
    const d0 = pv[0]?.dts as number;
    for (let i = 0; i < pv.length; i++)
      assert.ok(Math.abs((v[i] as Frame).dts - ((pv[i] as { dts: number }).dts - d0) / 90) <= 1, `dts ${i}`);
    // One config frame per track, first of its kind.
    assert.equal(frames.filter((f) => f.kind === "video" && f.config).length, 1);
    assert.equal(frames.filter((f) => f.kind === "audio" && f.config).length, 1);
    assert.ok(frames.find((f) => f.kind === "video")?.config);
    assert.ok(frames.find((f) => f.kind === "audio")?.config);
    return frames;
  }

  it("H.264 (3 B-frames) + AAC: AVC sequence header, AVCC frames, ADTS frames each timed", async () => {
    const frames = await check("h264-aac");
    const cfg = frames.find((f) => f.kind === "video" && f.config) as Frame;
    assert.equal(cfg.data[0], 0x17);
    const info = parseAvcConfig(cfg.data.subarray(5));
    assert.equal(`${info.width}x${info.height}`, "320x240");
    const asc = frames.find((f) => f.kind === "audio" && f.config) as Frame;
    assert.deepEqual([...asc.data.subarray(0, 2)], [0xaf, 0]);
    // 48 kHz AAC-LC: 1024 samples = 21.33 ms between frames.
    const a = media(frames, "audio");
    const step = ((a.at(-1) as Frame).dts - (a[0] as Frame).dts) / (a.length - 1);
    assert.ok(Math.abs(step - 1024 / 48) < 0.5, `audio step ${step}`);
  });

  it("H.265 (3 B-frames) + Opus: enhanced-RTMP hvc1 and Opus frames", async () => {
    const frames = await check("h265-opus");
    const cfg = frames.find((f) => f.kind === "video" && f.config) as Frame;
    assert.equal(parseVideoTag(cfg.data)?.fourcc, "hvc1");
    assert.equal(parseHevcConfig(cfg.data.subarray(5)).width, 320);
    const head = frames.find((f) => f.kind === "audio" && f.config) as Frame;
    assert.equal(head.data.toString("latin1", 1, 5), "Opus");
    assert.equal(parseOpusHead(head.data.subarray(5)).channels, 1);
  });

  it("resyncs after garbage, drops the PES a continuity gap broke, never throws", async () => {
    const ts = await ffmpegTs("h264", 2);
    const clean = media(demuxAll(ts).frames, "video").length;
    const packets: Buffer[] = [];
    for (let i = 0; i < ts.length; i += 188) packets.push(ts.subarray(i, i + 188));
    // Garbage (with fake sync bytes) before packet 50; packet 120 lost.
    const garbage = Buffer.from([0x47, 1, 2, 3, 0x47, 0x47, 9, 9, 0, 0, 1, 0xe0]);
    const hurt = Buffer.concat([
      Buffer.from("junk at the start"),
      ...packets.slice(0, 50),
      garbage,
      ...packets.slice(50, 120),
      ...packets.slice(121),
    ]);
    const { frames, errors } = demuxAll(hurt, 1000);
    const v = media(frames, "video");
    assert.ok(errors.some((e) => /resync/.test(e.message)));
    assert.ok(errors.some((e) => /continuity/.test(e.message)));
    assert.ok(v.length === clean - 1, `one frame lost (${v.length} of ${clean})`);
    assertMonotonic(v);
  });

  it("takes the first video track of a PMT that lists two; drops a PES over maxPesBytes", async () => {
    const file = join(dir, "two.ts");
    await run("ffmpeg", [
      ...["-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"],
      ...["-t", "2", "-map", "0:v", "-map", "0:v", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25"],
      ...["-f", "mpegts", file],
    ]);
    const ts = await readFile(file);
    const { frames, errors } = demuxAll(ts);
    assert.deepEqual(errors, []);
    assert.equal(frames.filter((f) => f.config).length, 1, "one video config");
    assert.equal(media(frames, "video").length, (await probePackets(file, "v")).length / 2);
    // A small PES limit: big frames are dropped and reported, the rest goes on.
    const small: Error[] = [];
    const kept: Frame[] = [];
    const d = new TsDemuxer((f) => kept.push(f), { onError: (e) => small.push(e), maxPesBytes: 2000 });
    d.push(ts);
    d.end();
    assert.ok(small.some((e) => /over 2000 bytes/.test(e.message)));
    assert.ok(media(kept, "video").length < media(frames, "video").length);
  });

  it("survives random bytes and truncated packets", () => {
    const errors: Error[] = [];
    const d = new TsDemuxer(() => {}, { onError: (e) => errors.push(e) });
    let seed = 7;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed & 0xff;
    };
    for (let i = 0; i < 200; i++) {
      const b = Buffer.from(Array.from({ length: 700 }, rnd));
      // Some well-formed-looking headers among the noise.
      for (let p = 0; p + 188 <= b.length; p += 188) b[p] = 0x47;
      d.push(b);
    }
    d.end();
    assert.ok(errors.length > 0);
  });
});

it("H.265 whose in-band SPS cannot be read: reported, and no frame goes out without its SequenceStart", async () => {
  const { TsMuxer } = await import("./mux.ts");
  const { exVideoTag, FOURCC_HEVC, VIDEO_PACKET } = await import("../flv/ex-video.ts");
  const { videoFrame } = await import("../flv/tag.ts");
  const mux = new TsMuxer();
  // An hvcC without parameter sets: the muxer takes it; the samples carry VPS, a 4-byte SPS, PPS and the IDR.
  const rec = Buffer.alloc(23);
  rec[0] = 1;
  mux.frame(videoFrame(0, exVideoTag(VIDEO_PACKET.SequenceStart, FOURCC_HEVC, true, rec)));
  const nal = (type: number, size: number) =>
    Buffer.concat([Buffer.from([type << 1, 1]), Buffer.alloc(size - 2, 0x55)]);
  const sample = [nal(32, 24), nal(33, 4), nal(34, 8), nal(19, 500)];
  const body = Buffer.concat(sample.map((n) => Buffer.concat([Buffer.from([0, 0, 0, n.length]), n])));
  const ts = [0, 40, 80].map((dts) =>
    mux.frame(videoFrame(dts, exVideoTag(VIDEO_PACKET.CodedFrames, FOURCC_HEVC, true, body))),
  );
  const frames: Frame[] = [];
  const errors: string[] = [];
  const d = new TsDemuxer((f) => frames.push(f), { onError: (e) => errors.push(e.message) });
  for (const b of ts) d.push(b);
  d.end();
  assert.ok(
    errors.some((e) => /SPS too short/.test(e)),
    errors.join("; "),
  );
  assert.deepEqual(frames, [], "nothing: no usable configuration");
});
