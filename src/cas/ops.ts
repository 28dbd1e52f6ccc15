/**
 * `ami-streams cas put|get|stat|ls|pin|unpin|gc|verify` (MCP: cas_put, cas_get, ...): the content-addressed store,
 * opened in the calling process (no service needed; concurrent processes are safe, see fs-gc.ts).
 */
import { createReadStream, createWriteStream } from "node:fs";
import { rename, stat, unlink } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { z } from "zod";
import { AmiError } from "../core/errors.ts";
import { defineOp, type OpDef } from "../core/ops.ts";
import { openStore } from "./open.ts";
import { type ObjectInfo, PIN } from "./types.ts";

/** Content returned inline (MCP, or the CLI without --out) is capped; larger reads go to a file. */
const INLINE_MAX = 1024 * 1024;

const idInput = z.string().min(1).describe("object id (or a unique 8+ hex prefix, the file's sha256, or its CID)");

const objectView = z.object({
  id: z.string(),
  sha256: z.string(),
  cid: z.string(),
  size: z.number(),
  chunks: z.number(),
  holds: z.array(z.string()),
  pinned: z.boolean(),
});

const objectLine = (o: ObjectInfo) =>
  `${o.id.slice(0, 16)}  ${String(o.size).padStart(12)}  ${String(o.chunks).padStart(6)} chunk(s)  ${o.pinned ? "pinned" : o.holds.length ? `${o.holds.length} hold(s)` : "unheld"}`;

const objectHuman = (o: ObjectInfo) =>
  [
    `id      ${o.id}`,
    `sha256  ${o.sha256}`,
    `cid     ${o.cid}`,
    `size    ${o.size}`,
    `chunks  ${o.chunks}`,
    `holds   ${o.holds.length ? o.holds.join(", ") : "none"}${o.pinned ? "" : " (not pinned: gc may delete it)"}`,
  ].join("\n");

/** `a-b` (inclusive, as in an HTTP Range) or `a-` (to the end) -> [start, end). */
export function parseRange(s: string, size: number): { start: number; end: number } {
  const m = /^(\d+)-(\d*)$/.exec(s.trim());
  if (!m) throw new AmiError("AMI_INVALID_INPUT", `--range: expected a-b or a- (byte offsets), got '${s}'`);
  const start = Number(m[1]);
  const end = m[2] === "" ? size : Math.min(Number(m[2]) + 1, size);
  if (start > end || (start >= size && size > 0) || end < start)
    throw new AmiError("AMI_INVALID_INPUT", `--range ${s} is outside the object (size ${size})`);
  return { start, end };
}

export const casPut = defineOp({
  name: "cas.put",
  summary: "Store a file in the content-addressed store (pinned); prints its id, sha256, CID, chunks and new bytes",
  input: z
    .object({
      file: z.string().min(1).describe("file to store"),
      pin: z.boolean().default(true).describe("pin it so gc keeps it (default true)"),
    })
    .strict(),
  output: z.object({
    id: z.string(),
    sha256: z.string(),
    cid: z.string(),
    size: z.number(),
    chunks: z.number(),
    newChunks: z.number(),
    newBytes: z.number(),
    pinned: z.boolean(),
  }),
  annotations: { readOnly: false, destructive: false, idempotent: true },
  positional: ["file"],
  human: (r) =>
    [
      `id      ${r.id}`,
      `sha256  ${r.sha256}`,
      `cid     ${r.cid}`,
      `size    ${r.size}`,
      `chunks  ${r.chunks} (${r.newChunks} new)`,
      `stored  ${r.newBytes} new byte(s)${r.pinned ? ", pinned" : ", not pinned"}`,
    ].join("\n"),
  async run({ file, pin }, ctx) {
    const path = resolve(file);
    const st = await stat(path).catch(() => undefined);
    if (!st?.isFile()) throw new AmiError("AMI_INVALID_INPUT", `not a readable file: ${file}`);
    const store = openStore(ctx);
    const r = await store.put(createReadStream(path, { highWaterMark: 1024 * 1024 }), {
      hold: pin ? PIN : undefined,
      signal: ctx.signal,
      progress: (n) => ctx.progress(n, st.size, "bytes"),
    });
    return { ...r, pinned: pin };
  },
});

export const casGet = defineOp({
  name: "cas.get",
  summary: "Read an object (or --range a-b of it), verifying every chunk: to --out FILE, else inline (up to 1 MiB)",
  input: z
    .object({
      id: idInput,
      out: z.string().min(1).optional().describe("write the bytes to this file (replaced atomically)"),
      range: z.string().optional().describe("byte range a-b (inclusive) or a- (to the end)"),
    })
    .strict(),
  output: z.object({
    id: z.string(),
    start: z.number(),
    end: z.number().describe("exclusive"),
    bytes: z.number(),
    out: z.string().optional(),
    encoding: z.enum(["utf8", "base64"]).optional(),
    content: z.string().optional(),
  }),
  annotations: { readOnly: false, destructive: false, idempotent: true },
  positional: ["id"],
  human: (r) => (r.out ? `${r.bytes} byte(s) of ${r.id} written to ${r.out}` : (r.content ?? "")),
  async run({ id, out, range }, ctx) {
    const store = openStore(ctx);
    const info = await store.stat(id);
    const { start, end } = range ? parseRange(range, info.size) : { start: 0, end: info.size };
    const bytes = end - start;
    const source = store.get(info.id, { start, end });
    if (out) {
      const dest = resolve(out);
      const tmp = join(dirname(dest), `.${process.pid}-${Date.now()}.cas-get.tmp`);
      let done = 0;
      const counted = async function* () {
        for await (const b of source) {
          done += b.length;
          ctx.progress(done, bytes, "bytes");
          yield b;
        }
      };
      try {
        await pipeline(Readable.from(counted()), createWriteStream(tmp, { flags: "wx" }), { signal: ctx.signal });
        await rename(tmp, dest);
      } catch (e) {
        await unlink(tmp).catch(() => {});
        throw e;
      }
      return { id: info.id, start, end, bytes, out: dest };
    }
    if (bytes > INLINE_MAX)
      throw new AmiError("AMI_INVALID_INPUT", `${bytes} bytes is more than 1 MiB: use --out FILE (or --range)`);
    const parts: Buffer[] = [];
    for await (const b of source) parts.push(b);
    const buf = Buffer.concat(parts);
    let text: string | undefined;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(buf);
    } catch {}
    return text !== undefined
      ? { id: info.id, start, end, bytes, encoding: "utf8" as const, content: text }
      : { id: info.id, start, end, bytes, encoding: "base64" as const, content: buf.toString("base64") };
  },
});

export const casStat = defineOp({
  name: "cas.stat",
  summary: "An object's id, sha256, CID, size, chunk count and holds (pins)",
  input: z.object({ id: idInput }).strict(),
  output: objectView,
  annotations: { readOnly: true, destructive: false, idempotent: true },
  positional: ["id"],
  human: objectHuman,
  run: ({ id }, ctx) => openStore(ctx).stat(id),
});

export const casLs = defineOp({
  name: "cas.ls",
  summary: "List the objects in the content-addressed store",
  input: z.object({}).strict(),
  output: z.object({ objects: z.array(objectView), bytes: z.number() }),
  annotations: { readOnly: true, destructive: false, idempotent: true },
  human: (o) => [...o.objects.map(objectLine), `${o.objects.length} object(s), ${o.bytes} byte(s)`].join("\n"),
  async run(_i, ctx) {
    const objects = await openStore(ctx).list();
    return { objects, bytes: objects.reduce((n, o) => n + o.size, 0) };
  },
});

export const casPin = defineOp({
  name: "cas.pin",
  summary: "Pin an object so gc keeps it",
  input: z.object({ id: idInput }).strict(),
  output: objectView,
  annotations: { readOnly: false, destructive: false, idempotent: true },
  positional: ["id"],
  human: objectHuman,
  async run({ id }, ctx) {
    const store = openStore(ctx);
    await store.hold(id, PIN);
    return store.stat(id);
  },
});

export const casUnpin = defineOp({
  name: "cas.unpin",
  summary: "Unpin an object (the next gc deletes it unless something else holds it)",
  input: z.object({ id: idInput }).strict(),
  output: objectView,
  annotations: { readOnly: false, destructive: false, idempotent: true },
  positional: ["id"],
  human: objectHuman,
  async run({ id }, ctx) {
    const store = openStore(ctx);
    const full = await store.resolve(id);
    await store.release(full, PIN);
    return store.stat(full);
  },
});

export const casGc = defineOp({
  name: "cas.gc",
  summary: "Delete unheld objects, chunks nothing uses and dead writers' temp files (safe during puts)",
  input: z.object({}).strict(),
  output: z.object({
    objectsDeleted: z.number(),
    chunksDeleted: z.number(),
    bytesFreed: z.number(),
    objectsKept: z.number(),
    chunksKept: z.number(),
    tempFilesRemoved: z.number(),
  }),
  annotations: { readOnly: false, destructive: true, idempotent: true },
  human: (r) =>
    `deleted ${r.objectsDeleted} object(s), ${r.chunksDeleted} chunk(s) (${r.bytesFreed} bytes), ${r.tempFilesRemoved} temp file(s); kept ${r.objectsKept} object(s), ${r.chunksKept} chunk(s)`,
  run: (_i, ctx) => openStore(ctx).gc(),
});

export const casVerify = defineOp({
  name: "cas.verify",
  summary: "Re-hash every chunk and manifest (or one object's) and report corrupt or missing chunks (exit 1)",
  input: z.object({ id: idInput.optional() }).strict(),
  output: z.object({
    ok: z.boolean(),
    objectsChecked: z.number(),
    chunksChecked: z.number(),
    bytesChecked: z.number(),
    corrupt: z.array(
      z.object({ chunk: z.string(), objects: z.array(z.string()), problem: z.enum(["mismatch", "missing"]) }),
    ),
    corruptObjects: z.array(z.string()),
  }),
  annotations: { readOnly: true, destructive: false, idempotent: true },
  positional: ["id"],
  exitCode: (r) => (r.ok ? 0 : 1),
  human: (r) =>
    [
      ...r.corrupt.map(
        (c) =>
          `${c.problem === "missing" ? "missing" : "CORRUPT"} chunk ${c.chunk} (objects: ${c.objects.join(", ") || "none"})`,
      ),
      ...r.corruptObjects.map((o) => `CORRUPT manifest ${o}`),
      `${r.ok ? "ok" : "FAILED"}: ${r.objectsChecked} object(s), ${r.chunksChecked} chunk(s), ${r.bytesChecked} bytes checked`,
    ].join("\n"),
  async run({ id }, ctx) {
    const r = await openStore(ctx).verify(id, (done, total) => ctx.progress(done, total, "chunks"));
    return { ok: r.corrupt.length === 0 && r.corruptObjects.length === 0, ...r };
  },
});

// biome-ignore lint/suspicious/noExplicitAny: ops of different input types; run() takes its input contravariantly, so only any unites them
export const casOps: OpDef<any, any>[] = [casPut, casGet, casStat, casLs, casPin, casUnpin, casGc, casVerify];
