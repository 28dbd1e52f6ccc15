/**
 * Thumbnails per second of a 12-megapixel JPEG (4000x3000) at 640x480 scale — the size clients ask for in a
 * timeline — through the homeserver's HTTP route (GET /_matrix/client/v1/media/thumbnail, a homeserver child
 * process), every request uncached: each goes to a distinct upload (the same picture with a different trailing byte,
 * so another content address and another cache entry). Sequential (one client) and with 2 in flight (the machine's
 * cores). Baseline, same run and same picture: sharp called directly in this process (resize 640x480 + JPEG q80, what
 * the route does), sequential and 2 at once. Also: a cached thumbnail's rate through the route.
 */
import sharp from "sharp";
import { registerUser } from "../test/e2e/helpers/client.ts";
import { ChildHomeserver } from "../test/e2e/helpers/homeserver.ts";
import { type BenchResult, pool, round, runIfMain } from "./matrix/lib.ts";

const IMAGES = Number(process.env.BENCH_THUMB_IMAGES ?? 20);
const W = 4000;
const H = 3000;

/**
 * A 12 MP picture with a photo's amount of detail (gradients, an XOR pattern and +-16 of noise from a fixed-seed
 * LCG), as JPEG q90: about 5 MiB, like a phone camera's.
 */
async function picture(): Promise<Buffer> {
  const raw = Buffer.alloc(W * H * 3);
  let seed = 1;
  const noise = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return ((seed >> 16) & 31) - 16;
  };
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) {
      const i = (y * W + x) * 3;
      raw[i] = ((x * 255) / W + noise()) & 255;
      raw[i + 1] = ((y * 255) / H + noise()) & 255;
      raw[i + 2] = ((x ^ y) + noise()) & 255;
    }
  return sharp(raw, { raw: { width: W, height: H, channels: 3 } })
    .jpeg({ quality: 90 })
    .toBuffer();
}

/** Thumbnails per second of `n` jobs on `lanes` lanes. */
async function rate(n: number, lanes: number, job: (i: number) => Promise<void>): Promise<number> {
  const t = performance.now();
  await pool(
    Array.from({ length: n }, (_, i) => i),
    lanes,
    job,
  );
  return n / ((performance.now() - t) / 1000);
}

const direct = (jpeg: Buffer) =>
  sharp(jpeg, { limitInputPixels: 32_000_000 })
    .rotate()
    .resize(640, 480, { fit: "fill" })
    .jpeg({ quality: 80 })
    .toBuffer();

export async function run(): Promise<BenchResult[]> {
  const jpeg = await picture();
  console.error(`[thumbnail] ${W}x${H} JPEG: ${round(jpeg.length / 1024 / 1024, 1)} MiB`);
  const hs = await ChildHomeserver.start({ matrix: { media: { maxUploadBytes: 64 * 1024 * 1024 } } });
  try {
    const user = await registerUser(hs.url, "thumbs");
    const auth = { Authorization: `Bearer ${user.accessToken}` };
    const upload = async (i: number) => {
      const body = Buffer.concat([jpeg, Buffer.from([i & 255, i >> 8])]);
      const r = await fetch(`${hs.url}/_matrix/media/v3/upload`, {
        method: "POST",
        headers: { ...auth, "Content-Type": "image/jpeg" },
        body: new Uint8Array(body),
      });
      if (r.status !== 200) throw new Error(`upload -> ${r.status}`);
      return ((await r.json()) as { content_uri: string }).content_uri.split("/").pop()!;
    };
    const ids: string[] = [];
    for (let i = 0; i < IMAGES * 2 + 1; i++) ids.push(await upload(i));
    let next = 0;
    const thumb = async (id: string) => {
      const r = await fetch(
        `${hs.url}/_matrix/client/v1/media/thumbnail/localhost/${id}?width=640&height=480&method=scale`,
        { headers: auth },
      );
      const b = Buffer.from(await r.arrayBuffer());
      if (r.status !== 200 || r.headers.get("content-type") !== "image/jpeg")
        throw new Error(`thumbnail -> ${r.status}`);
      return b;
    };
    await direct(jpeg); // load libvips here before timing
    await thumb(ids[IMAGES * 2]); // and in the server
    const httpSeq = await rate(IMAGES, 1, async () => void (await thumb(ids[next++])));
    const httpPar = await rate(IMAGES, 2, async () => void (await thumb(ids[next++])));
    const cached = await rate(IMAGES * 4, 2, async () => void (await thumb(ids[0])));
    const sharpSeq = await rate(IMAGES, 1, async () => void (await direct(jpeg)));
    const sharpPar = await rate(IMAGES, 2, async () => void (await direct(jpeg)));
    const what = `thumbnail 640x480 of a ${W}x${H} JPEG, uncached`;
    const row = (metric: string, value: number, baseline: string): BenchResult => ({
      bench: what,
      metric,
      value: round(value, 1),
      unit: "thumbnails/s",
      baseline,
      target: "",
      met: null,
    });
    return [
      row("HTTP, 1 client", httpSeq, `sharp direct, 1 at a time: ${round(sharpSeq, 1)}/s`),
      row("HTTP, 2 in flight", httpPar, `sharp direct, 2 at once: ${round(sharpPar, 1)}/s`),
      {
        ...row("HTTP, cached, 2 in flight", cached, "the same thumbnail read from the cache"),
        bench: `thumbnail 640x480 of a ${W}x${H} JPEG, cached`,
      },
    ];
  } finally {
    await hs.dispose();
  }
}

runIfMain(import.meta, run);
