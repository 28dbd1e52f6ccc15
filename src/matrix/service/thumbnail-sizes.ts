/**
 * Which thumbnail a request gets (spec "Thumbnails"; Synapse's default `thumbnail_sizes` and its `_select_thumbnail`):
 * the server has a fixed set of sizes — 32x32 crop, 96x96 crop, 320x240 scale, 640x480 scale, 800x600 scale — and a
 * request is answered with the closest one that is at least the asked size (else the biggest), so any number of
 * asked sizes make at most five thumbnails per image. "scale" keeps the image's aspect ratio and fits the box, never
 * beyond the original's size; "crop" fills the box exactly and cuts the overflow, centred. Pure arithmetic.
 */

export type ThumbnailMethod = "crop" | "scale";

export interface ThumbnailSize {
  width: number;
  height: number;
  method: ThumbnailMethod;
}

/** Synapse's DEFAULT_THUMBNAIL_SIZES, which the spec names as the sizes servers SHOULD produce. */
export const THUMBNAIL_SIZES: readonly ThumbnailSize[] = [
  { width: 32, height: 32, method: "crop" },
  { width: 96, height: 96, method: "crop" },
  { width: 320, height: 240, method: "scale" },
  { width: 640, height: 480, method: "scale" },
  { width: 800, height: 600, method: "scale" },
];

/** The largest size with the image's aspect ratio that fits in the box (at least 1x1). */
export function fitInside(srcW: number, srcH: number, boxW: number, boxH: number): [number, number] {
  if (boxW * srcH < boxH * srcW) return [boxW, Math.max(Math.floor((boxW * srcH) / srcW), 1)];
  return [Math.max(Math.floor((boxH * srcW) / srcH), 1), boxH];
}

/** The thumbnails an image of this size has: crops as listed, scales fitted and never larger than the original. */
export function candidates(srcW: number, srcH: number, sizes = THUMBNAIL_SIZES): ThumbnailSize[] {
  const out = new Map<string, ThumbnailSize>();
  for (const s of sizes) {
    if (s.method === "crop") {
      const key = `${s.width}x${s.height}`;
      if (!out.has(key)) out.set(key, s);
    } else {
      const [w, h] = fitInside(srcW, srcH, s.width, s.height);
      const t = { width: Math.min(srcW, w), height: Math.min(srcH, h), method: "scale" as const };
      // A scale of the same dimensions as a crop replaces it (as Synapse dedupes).
      out.set(`${t.width}x${t.height}`, t);
    }
  }
  return [...out.values()];
}

/**
 * The thumbnail for an asked size and method: among the image's thumbnails of that method, those at least as wide or
 * as tall as asked win over smaller ones; then (crop) the closest aspect ratio, covering both sides, and (both) the
 * smallest size difference. First in list order on ties. Null if the method has no thumbnail.
 */
export function selectThumbnail(
  srcW: number,
  srcH: number,
  wantW: number,
  wantH: number,
  method: ThumbnailMethod,
  sizes = THUMBNAIL_SIZES,
): ThumbnailSize | null {
  const score = (t: ThumbnailSize): number[] => {
    const sizeQuality = Math.abs((wantW - t.width) * (wantH - t.height));
    if (method === "scale") return [sizeQuality];
    const aspect = Math.abs(wantW * t.height - wantH * t.width);
    const covers = wantW <= t.width && wantH <= t.height ? 0 : 1;
    return [aspect, covers, sizeQuality];
  };
  const lexLess = (a: number[], b: number[]) => {
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] < b[i];
    return false;
  };
  const best = (list: ThumbnailSize[]) => {
    let pick: ThumbnailSize | null = null;
    let pickScore: number[] = [];
    for (const t of list) {
      const s = score(t);
      if (pick === null || lexLess(s, pickScore)) [pick, pickScore] = [t, s];
    }
    return pick;
  };
  const own = candidates(srcW, srcH, sizes).filter((t) => t.method === method);
  const bigEnough = own.filter((t) => t.width >= wantW || t.height >= wantH);
  return best(bigEnough) ?? best(own);
}
