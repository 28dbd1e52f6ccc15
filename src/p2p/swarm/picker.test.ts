import assert from "node:assert/strict";
import { test } from "node:test";
import type { Metainfo } from "../metainfo.ts";
import { Bits } from "../wire/messages.ts";
import { Picker, REFUSED_RETRY_MS } from "./picker.ts";

const meta = {
  version: "v1",
  pieceLength: 32 * 1024,
  totalLength: 4 * 32 * 1024,
  spaceLength: 4 * 32 * 1024,
  pieceCount: 4,
} as Metainfo;
const all = (): Buffer => {
  const b = Bits.make(4);
  for (let i = 0; i < 4; i++) Bits.set(b, i);
  return b;
};

test("a peer that refused a piece is not asked for it again while another peer has it, then is", () => {
  let now = 1_000_000;
  const picker = new Picker<string>(meta, Bits.make(4), () => now);
  const seed = all();
  picker.addBitfield(seed, 1);
  const first = picker.pick("seed", seed, 2);
  assert.equal(first.length, 2, "both blocks of one piece");
  const index = (first[0] as { index: number }).index;
  for (const r of first) picker.release("seed", r);
  picker.refuse("seed", index);
  const elsewhere = (i: number) => i === index;
  const again = picker.pick("seed", seed, 8, undefined, elsewhere);
  assert.ok(again.length > 0);
  assert.ok(
    again.every((r) => r.index !== index),
    "the refused piece goes to the peer that holds it",
  );
  // Nobody else has it: the refuser is asked at once.
  for (const r of again) picker.release("seed", r);
  assert.ok(picker.pick("seed", seed, 8, undefined, () => false).some((r) => r.index === index));
  // Someone has it, but the refusal is old: asked again.
  picker.release("seed");
  picker.refuse("seed", index);
  now += REFUSED_RETRY_MS;
  assert.ok(picker.pick("seed", seed, 8, undefined, elsewhere).some((r) => r.index === index));
});
