import assert from "node:assert/strict";
import { test } from "node:test";
import { candidates, fitInside, selectThumbnail } from "./thumbnail-sizes.ts";

const pick = (w: number, h: number, ww: number, wh: number, m: "crop" | "scale") => {
  const t = selectThumbnail(w, h, ww, wh, m);
  return t && `${t.width}x${t.height}-${t.method}`;
};

test("fitInside keeps the aspect ratio inside the box", () => {
  assert.deepEqual(fitInside(640, 480, 320, 240), [320, 240]);
  assert.deepEqual(fitInside(1000, 100, 320, 240), [320, 32]);
  assert.deepEqual(fitInside(100, 1000, 320, 240), [24, 240]);
  assert.deepEqual(fitInside(10_000, 1, 32, 32), [32, 1], "never below 1 px");
});

test("scale thumbnails never exceed the original; equal ones collapse", () => {
  assert.deepEqual(
    candidates(100, 80).map((t) => `${t.width}x${t.height}-${t.method}`),
    ["32x32-crop", "96x96-crop", "100x80-scale"],
  );
});

test("the closest size at least as large wins, else the largest (Synapse's choice)", () => {
  assert.equal(pick(4000, 3000, 64, 64, "scale"), "320x240-scale");
  assert.equal(pick(4000, 3000, 320, 240, "scale"), "320x240-scale");
  // scale: one side at least as large is enough (the spec: one side may be smaller; the client letterboxes).
  assert.equal(pick(4000, 3000, 321, 200, "scale"), "320x240-scale");
  assert.equal(pick(4000, 3000, 321, 241, "scale"), "640x480-scale");
  assert.equal(pick(4000, 3000, 2000, 2000, "scale"), "800x600-scale");
  assert.equal(pick(4000, 3000, 20, 20, "crop"), "32x32-crop");
  assert.equal(pick(4000, 3000, 33, 33, "crop"), "96x96-crop");
  assert.equal(pick(4000, 3000, 500, 500, "crop"), "96x96-crop", "no larger crop: the largest");
  assert.equal(pick(50, 40, 640, 480, "scale"), "50x40-scale", "never upscaled");
});
