import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import {
  AUDIO_PACKET,
  exAudioTag,
  isOpus,
  opusConfigFrame,
  opusHead,
  opusHeadToDops,
  opusPacket,
  opusPacketFrame,
  opusPacketSamples,
  parseExAudio,
  parseOpusHead,
} from "./ex-audio.ts";
import { audioFrame } from "./tag.ts";

const hasFfmpeg = spawnSync("ffmpeg", ["-version"]).status === 0;

test("E-RTMP v2 Opus tags: sequence start is config, coded frames carry the packet; legacy AAC is not ExHeader", () => {
  const head = opusHead({ channels: 2, preSkip: 312, inputSampleRate: 44100 });
  const cfg = opusConfigFrame(0, head);
  assert.equal(cfg.config, true);
  assert.equal(cfg.data[0], 0x90, "SoundFormat 9, AudioPacketType 0");
  assert.equal(cfg.data.toString("latin1", 1, 5), "Opus");
  assert.ok(isOpus(cfg));
  assert.deepEqual(parseOpusHead(parseExAudio(cfg.data)?.body as Buffer), {
    channels: 2,
    preSkip: 312,
    inputSampleRate: 44100,
    outputGain: 0,
    mappingFamily: 0,
  });
  const pkt = Buffer.from([0xfc, 1, 2, 3]);
  const f = opusPacketFrame(20, pkt);
  assert.equal(f.config, false);
  assert.equal(f.dts, 20);
  assert.equal(f.data[0], 0x91);
  assert.deepEqual(opusPacket(f), pkt);
  assert.equal(opusPacket(cfg), undefined, "a sequence start has no packet");

  const aac = audioFrame(0, Buffer.from([0xaf, 1, 0x21]));
  assert.equal(parseExAudio(aac.data), undefined);
  assert.equal(isOpus(aac), false);
  assert.equal(opusPacket(aac), undefined);
  assert.equal(parseExAudio(exAudioTag(AUDIO_PACKET.SequenceEnd, "fLaC", Buffer.alloc(0)))?.fourcc, "fLaC");
  assert.throws(() => exAudioTag(0, "Op", Buffer.alloc(0)), /FourCC/);
});

test("OpusHead -> dOps: big-endian, version 0; bad headers are refused", () => {
  const dops = opusHeadToDops(opusHead({ channels: 1, preSkip: 0x0138, inputSampleRate: 48000, outputGain: -256 }));
  assert.deepEqual([...dops], [0, 1, 0x01, 0x38, 0, 0, 0xbb, 0x80, 0xff, 0x00, 0]);
  assert.throws(() => parseOpusHead(Buffer.from("OpusTags0123456789abc")), /not an OpusHead/);
  assert.throws(() => parseOpusHead(Buffer.alloc(5)), /not an OpusHead/);
  const surround = opusHead({ channels: 3, mappingFamily: 1, mappingTable: Buffer.from([2, 1, 0, 2, 1]) });
  assert.deepEqual([...opusHeadToDops(surround).subarray(10)], [1, 2, 1, 0, 2, 1]);
  assert.throws(() => parseOpusHead(surround.subarray(0, 22)), /truncated/);
});

test("Opus packet durations from the TOC byte agree with libopus output as ffprobe reads it", {
  skip: !hasFfmpeg,
}, () => {
  assert.equal(opusPacketSamples(Buffer.from([0x0b, 0x02])), 1920, "SILK NB 20 ms, code 3 with 2 frames");
  assert.equal(opusPacketSamples(Buffer.from([0x0b, 0x07])), 0, "7 x 20 ms is over the 120 ms limit");
  assert.equal(opusPacketSamples(Buffer.from([0x0b])), 0, "code 3 without its frame count byte");
  assert.equal(opusPacketSamples(Buffer.alloc(0)), 0);
  const dir = mkdtempSync(join(tmpdir(), "ami-opus-"));
  try {
    for (const ms of ["10", "20", "40", "60"]) {
      const file = join(dir, `${ms}.ogg`);
      const enc = spawnSync("ffmpeg", [
        ...["-v", "error", "-f", "lavfi", "-i", "sine=r=48000:d=0.5", "-c:a", "libopus", "-frame_duration", ms],
        ...["-y", file],
      ]);
      assert.equal(enc.status, 0, enc.stderr.toString());
      const probe = spawnSync("ffprobe", ["-v", "error", "-show_packets", "-show_data", "-of", "json", file]);
      const packets: { duration: number; data: string }[] = JSON.parse(probe.stdout.toString()).packets;
      assert.ok(packets.length > 5);
      for (const p of packets.slice(1, -1)) {
        // The hex dump's first line: "00000000: fc01 2345 ..." -> the packet's first bytes.
        const hex = (/^\S+: ((?:[0-9a-f]{2,4} ?)+)/.exec(p.data.trim())?.[1] ?? "").replace(/ /g, "");
        assert.equal(opusPacketSamples(Buffer.from(hex, "hex")), Number(p.duration), `${ms} ms packets`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
