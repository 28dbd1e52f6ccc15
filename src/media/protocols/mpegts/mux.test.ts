import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Frame } from "../../frame.ts";
import { TsMuxer, type TsMuxerOptions } from "./mux.ts";
import { crc32Mpeg, TS_PACKET } from "./psi.ts";
import { type Clip, demuxAll, ffmpegTs, probePackets, run } from "./testing.ts";

const muxAll = (frames: Frame[], opts?: TsMuxerOptions) => {
  const m = new TsMuxer(opts);
  return Buffer.concat(frames.map((f) => m.frame(f)));
};

/** Frames per kind in order (across kinds the order follows the packet interleaving, which may differ). */
const summary = (fs: Frame[]) =>
  [...fs.filter((f) => f.kind === "video"), ...fs.filter((f) => f.kind !== "video")].map(
    (f) => `${f.kind} ${f.dts} ${f.keyframe ? "K" : ""}${f.config ? "C" : ""} ${f.data.toString("hex")}`,
  );

describe("TsMuxer", () => {
  let dir: string;
  const source = new Map<Clip, Frame[]>();
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "ami-tsm-"));
    for (const clip of ["h264-aac", "h265-opus"] as const) source.set(clip, demuxAll(await ffmpegTs(clip)).frames);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const clip of ["h264-aac", "h265-opus"] as const) {
    it(`${clip}: frames -> TsMuxer -> TsDemuxer gives the same frames`, () => {
      const frames = source.get(clip) as Frame[];
      const ts = muxAll(frames);
      assert.equal(ts.length % TS_PACKET, 0);
      const back = demuxAll(ts);
      assert.deepEqual(back.errors, []);
      assert.deepEqual(summary(back.frames), summary(frames));
    });

    it(`${clip}: ffmpeg decodes TsMuxer's stream without an error, same packets`, async () => {
      const frames = source.get(clip) as Frame[];
      const file = join(dir, `${clip}.ts`);
      await writeFile(file, muxAll(frames));
      const { stderr } = await run("ffmpeg", ["-v", "error", "-i", file, "-f", "null", "-"]);
      assert.equal(stderr.trim(), "");
      const { stdout } = await run("ffprobe", [
        ...["-v", "error", "-show_entries", "stream=codec_name", "-of", "json", file],
      ]);
      const codecs = (JSON.parse(stdout).streams as { codec_name: string }[]).map((s) => s.codec_name);
      assert.deepEqual(codecs.sort(), clip === "h264-aac" ? ["aac", "h264"] : ["hevc", "opus"]);
      const pv = await probePackets(file, "v");
      const v = frames.filter((f) => f.kind === "video" && !f.config);
      assert.equal(pv.length, v.length);
      assert.equal(pv.filter((p) => p.key).length, v.filter((f) => f.keyframe).length);
      assert.equal(
        (await probePackets(file, "a")).length,
        frames.filter((f) => f.kind === "audio" && !f.config).length,
      );
    });
  }

  it("PAT/PMT before every keyframe, PCR on the video PID, valid CRCs and continuity counters", () => {
    const frames = source.get("h264-aac") as Frame[];
    const m = new TsMuxer();
    const cc = new Map<number, number>();
    let pcrs = 0;
    for (const f of frames) {
      const out = m.frame(f);
      for (let p = 0; p < out.length; p += TS_PACKET) {
        const pk = out.subarray(p, p + TS_PACKET);
        assert.equal(pk[0], 0x47);
        const pid = (((pk[1] as number) & 0x1f) << 8) | (pk[2] as number);
        const c = (pk[3] as number) & 15;
        if (cc.has(pid)) assert.equal(c, ((cc.get(pid) as number) + 1) & 15, `cc on ${pid}`);
        cc.set(pid, c);
        if (((pk[3] as number) & 0x20) !== 0 && (pk[4] as number) > 0 && ((pk[5] as number) & 0x10) !== 0) {
          assert.equal(pid, m.videoPid);
          pcrs++;
        }
        if (p === 0 && f.keyframe) {
          assert.equal(pid, 0, "a keyframe starts with the PAT");
          const len = 3 + (pk.readUInt16BE(6) & 0xfff);
          assert.equal(crc32Mpeg(pk, 5, 5 + len), 0, "PAT CRC");
        }
      }
    }
    assert.equal(pcrs, frames.filter((f) => f.kind === "video" && !f.config).length);
  });

  it("a 33-bit timestamp wrap comes out as one continuous timeline", () => {
    const frames = source.get("h264-aac") as Frame[];
    // Offset so the 90 kHz clock wraps two seconds in.
    const ts = muxAll(frames, { offsetMs: 2 ** 33 / 90 - 2000 });
    const back = demuxAll(ts);
    assert.deepEqual(summary(back.frames), summary(frames));
  });

  it("audio only: PAT/PMT repeat, PCR on the audio PID, ffmpeg decodes it", async () => {
    const frames = demuxAll(await ffmpegTs("aac", 3)).frames;
    const ts = muxAll(frames);
    let pats = 0;
    for (let p = 0; p < ts.length; p += TS_PACKET) if (ts.readUInt16BE(p + 1) === 0x4000) pats++;
    assert.ok(pats >= 5, `PAT ${pats} times in 3 s`);
    assert.deepEqual(summary(demuxAll(ts).frames), summary(frames));
    const file = join(dir, "aac.ts");
    await writeFile(file, ts);
    const { stderr } = await run("ffmpeg", ["-v", "error", "-i", file, "-f", "null", "-"]);
    assert.equal(stderr.trim(), "");
  });

  it("drops media it cannot describe (no config yet, no keyframe yet) and returns no partial packets", () => {
    const m = new TsMuxer();
    const frames = source.get("h264-aac") as Frame[];
    const media = frames.filter((f) => !f.config);
    for (const f of media.slice(0, 20)) assert.equal(m.frame(f).length, 0);
    assert.equal(m.frame({ kind: "data", dts: 0, data: Buffer.from("x"), keyframe: false, config: false }).length, 0);
    // Configs, then a non-keyframe: still nothing until the next keyframe.
    for (const f of frames.filter((x) => x.config)) assert.equal(m.frame(f).length, 0);
    const delta = media.find((f) => f.kind === "video" && !f.keyframe) as Frame;
    assert.equal(m.frame(delta).length, 0);
    const key = media.find((f) => f.keyframe) as Frame;
    assert.ok(m.frame(key).length > 0);
  });
});
