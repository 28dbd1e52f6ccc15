/**
 * Making a .torrent from a file or a folder: v1 (SHA-1 pieces), v2 (BEP 52 file tree + piece layers) or hybrid
 * (both; v1 files aligned to pieces with BEP 47 pad files so the two views hash the same bytes). Files are read
 * once, streamed, in the order the info dictionary lists them (sorted by path bytes, as the v2 tree sorts).
 */
import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { AmiError } from "../core/errors.ts";
import { type BInput, encode } from "./bencode.ts";
import { FileMerkle } from "./merkle.ts";
import { type Metainfo, parseTorrent } from "./metainfo.ts";

export interface CreateOptions {
  version?: "v1" | "v2" | "hybrid";
  /** Bytes, a power of two >= 16 KiB; default picked from the size (about 1,000–2,000 pieces). */
  pieceLength?: number;
  /** Tracker announce URLs, one tier each. */
  trackers?: string[];
  /** BEP 27; undefined leaves the key out. */
  private?: boolean;
  name?: string;
  comment?: string;
  /** Omit "creation date" for byte-identical output (tests). */
  creationDate?: number | null;
}

export interface SourceFile {
  /** Absolute path on disk. */
  abs: string;
  /** Path components under the torrent's name ([] for a single file). */
  path: string[];
  length: number;
}

/** The files under `path` (one file, or a folder walked recursively, sorted by path bytes). */
export async function listSource(path: string): Promise<SourceFile[]> {
  const st = await stat(path).catch(() => null);
  if (!st) throw new AmiError("AMI_INVALID_INPUT", `no such file or folder: ${path}`);
  if (st.isFile()) return [{ abs: path, path: [], length: st.size }];
  const out: SourceFile[] = [];
  const walk = async (dir: string, rel: string[]): Promise<void> => {
    const names = (await readdir(dir)).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const n of names) {
      const abs = join(dir, n);
      const s = await stat(abs);
      if (s.isDirectory()) await walk(abs, [...rel, n]);
      else if (s.isFile()) out.push({ abs, path: [...rel, n], length: s.size });
    }
  };
  await walk(path, []);
  if (!out.length) throw new AmiError("AMI_INVALID_INPUT", `folder ${path} has no files`);
  return out;
}

export function defaultPieceLength(total: number): number {
  let p = 16 * 1024;
  while (total / p > 2000 && p < 16 * 1024 * 1024) p *= 2;
  return p;
}

/** Hash `files` and build the .torrent; returns its bytes and parsed form. */
export async function createTorrent(
  files: SourceFile[],
  name: string,
  o: CreateOptions = {},
): Promise<{ torrent: Buffer; meta: Metainfo }> {
  const version = o.version ?? "v1";
  const total = files.reduce((s, f) => s + f.length, 0);
  const pieceLength = o.pieceLength ?? defaultPieceLength(total);
  if (pieceLength < 16384 || (pieceLength & (pieceLength - 1)) !== 0)
    throw new AmiError("AMI_INVALID_INPUT", "piece length must be a power of two of at least 16 KiB");
  const single = files.length === 1 && files[0]?.path.length === 0;
  const v1 = version !== "v2";
  const v2 = version !== "v1";
  const align = v1 && v2 && !single;

  // v1 state: a rolling SHA-1 over the piece space.
  const pieceHashes: Buffer[] = [];
  let h: Hash = createHash("sha1");
  let inPiece = 0;
  const feed1 = (b: Buffer): void => {
    let o2 = 0;
    while (o2 < b.length) {
      const n = Math.min(pieceLength - inPiece, b.length - o2);
      h.update(b.subarray(o2, o2 + n));
      inPiece += n;
      o2 += n;
      if (inPiece === pieceLength) {
        pieceHashes.push(h.digest());
        h = createHash("sha1");
        inPiece = 0;
      }
    }
  };
  const v1Files: BInput[] = [];
  const tree: Record<string, BInput> = {};
  const layers: Record<string, BInput> = {};

  for (const [i, f] of files.entries()) {
    const merkle = v2 ? new FileMerkle(pieceLength) : null;
    let seen = 0;
    for await (const chunk of createReadStream(f.abs, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
      seen += chunk.length;
      if (v1) feed1(chunk);
      merkle?.update(chunk);
    }
    if (seen !== f.length) throw new AmiError("AMI_INVALID_INPUT", `${f.abs} changed while hashing`);
    if (v1) v1Files.push({ length: f.length, path: f.path });
    if (merkle) {
      const { root, layer } = merkle.finish();
      const leaf: Record<string, BInput> = { length: f.length };
      if (f.length > 0) leaf["pieces root"] = root;
      if (layer.length) layers[root.toString("latin1")] = Buffer.concat(layer);
      let node = tree;
      const parts = single ? [name] : f.path;
      for (const p of parts) {
        const k = Buffer.from(p, "utf8").toString("latin1");
        node[k] ??= {};
        node = node[k] as Record<string, BInput>;
      }
      node[""] = leaf;
    }
    // Hybrid: pad the v1 stream to the next piece boundary, except after the last file.
    if (align && inPiece > 0 && i < files.length - 1) {
      const pad = pieceLength - inPiece;
      feed1(Buffer.alloc(pad));
      v1Files.push({ attr: "p", length: pad, path: [".pad", String(pad)] });
    }
  }
  if (v1 && inPiece > 0) pieceHashes.push(h.digest());

  const info: Record<string, BInput> = { name, "piece length": pieceLength };
  // Absent unless asked; `false` writes 0 as transmission-create does (it changes the infohash).
  if (o.private !== undefined) info.private = o.private ? 1 : 0;
  if (v1) {
    info.pieces = Buffer.concat(pieceHashes);
    if (single) info.length = files[0]?.length ?? 0;
    else info.files = v1Files;
  }
  if (v2) {
    info["meta version"] = 2;
    info["file tree"] = tree;
  }
  const top: Record<string, BInput> = { info };
  const trackers = o.trackers ?? [];
  if (trackers[0]) top.announce = trackers[0];
  if (trackers.length > 1) top["announce-list"] = trackers.map((t) => [t]);
  if (o.comment) top.comment = o.comment;
  top["created by"] = "ami-streams";
  if (o.creationDate !== null) top["creation date"] = o.creationDate ?? Math.floor(Date.now() / 1000);
  if (v2 && Object.keys(layers).length) top["piece layers"] = layers;
  const torrent = encode(top);
  return { torrent, meta: parseTorrent(torrent) };
}

/** A .torrent for a file or folder on disk. */
export async function createTorrentFrom(path: string, o: CreateOptions = {}) {
  const files = await listSource(path);
  return createTorrent(files, o.name ?? basename(path), o);
}
