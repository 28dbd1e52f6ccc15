/**
 * The remote media cache (as Synapse's): another server's file, asked for by a client of ours
 * (/_matrix/client/v1/media/download/{serverName}/{mediaId}), is fetched once over federation
 * (/_matrix/federation/v1/media/download, a multipart/mixed answer: JSON metadata, then the bytes or a Location to
 * fetch them from) into our content-addressed store, under a media row `remote:<server>/<mediaId>` that no local
 * media ID can name (local IDs are [A-Za-z0-9_-]). Later downloads, and thumbnails made here, come from that copy,
 * whether the origin is up or not. The file streams from the socket into the store (only the multipart head, at most
 * 64 KiB, is buffered); past matrix.media.maxUploadBytes it is refused (M_TOO_LARGE) and nothing is kept.
 */
import { AmiError } from "../../core/errors.ts";
import { isValidServerName } from "../events/ids.ts";
import type { Homeserver } from "../hs.ts";
import { mediaHold, releaseLostPut } from "../service/media.ts";
import { AddressPolicy, checkUrl, safeFetch } from "../service/safe-fetch.ts";
import type { MediaRow } from "../store/types.ts";
import { remoteError } from "./client.ts";

/** Room for the multipart framing and the JSON part around the file. */
const FRAMING_BYTES = 64 * 1024;

export const remoteMediaId = (serverName: string, mediaId: string) => `remote:${serverName}/${mediaId}`;

const inflight = new WeakMap<Homeserver, Map<string, Promise<MediaRow>>>();

/** The cached row of a remote file, fetching it first when it is not cached (one fetch per file at a time). */
export async function remoteMedia(
  hs: Homeserver,
  serverName: string,
  mediaId: string,
  signal?: AbortSignal,
): Promise<MediaRow> {
  if (!isValidServerName(serverName)) throw new AmiError("M_NOT_FOUND", "Media not found (invalid server name)");
  const id = remoteMediaId(serverName, mediaId);
  const cached = await hs.store.media.getMedia(id);
  if (cached) return cached;
  let running = inflight.get(hs);
  if (!running) {
    running = new Map();
    inflight.set(hs, running);
  }
  let p = running.get(id);
  if (!p) {
    p = fetchRemote(hs, serverName, mediaId, id).finally(() => running.delete(id));
    running.set(id, p);
  }
  // The client going away does not abort the fetch others may wait for; it just stops waiting.
  if (!signal) return p;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => signal.addEventListener("abort", () => reject(signal.reason), { once: true })),
  ]);
}

interface Part {
  headers: Record<string, string>;
  body: Buffer;
}

/** The parts of a multipart body (RFC 2046): between `--boundary` lines, headers, a blank line, the content. */
export function parseMultipart(body: Buffer, boundary: string): Part[] {
  const delim = Buffer.from(`--${boundary}`);
  const parts: Part[] = [];
  let at = body.indexOf(delim);
  if (at < 0) throw new Error("no boundary in the body");
  for (;;) {
    at += delim.length;
    if (body.subarray(at, at + 2).toString() === "--") return parts;
    // Past the CRLF after the boundary line.
    const lineEnd = body.indexOf("\r\n", at);
    if (lineEnd < 0) throw new Error("truncated multipart body");
    const next = body.indexOf(Buffer.concat([Buffer.from("\r\n"), delim]), lineEnd);
    if (next < 0) throw new Error("multipart body without its closing boundary");
    const part = body.subarray(lineEnd + 2, next);
    const blank = part.indexOf("\r\n\r\n");
    const head = blank < 0 ? part.toString("latin1") : part.subarray(0, blank).toString("latin1");
    const headers: Record<string, string> = {};
    for (const line of head.split("\r\n")) {
      const c = line.indexOf(":");
      if (c > 0) headers[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim();
    }
    parts.push({ headers, body: blank < 0 ? Buffer.alloc(0) : part.subarray(blank + 4) });
    at = next + 2;
  }
}

/** `filename` or `filename*` of a Content-Disposition, if any. */
function filenameOf(cd: string | undefined): string | null {
  if (!cd) return null;
  const star = /filename\*=UTF-8''([^;]+)/i.exec(cd);
  if (star) {
    try {
      return decodeURIComponent(star[1]).slice(0, 255);
    } catch {
      return null;
    }
  }
  const plain = /filename="?([^";]+)"?/i.exec(cd);
  return plain ? plain[1].slice(0, 255) : null;
}

/** Reads from a byte stream with a lookahead buffer. */
export class Reader {
  buf: Buffer = Buffer.alloc(0);
  done = false;
  readonly #it: AsyncIterator<Buffer>;
  constructor(src: AsyncIterable<Buffer>) {
    this.#it = src[Symbol.asyncIterator]();
  }
  /** Append the next chunk; false at the end of the stream. */
  async more(): Promise<boolean> {
    if (this.done) return false;
    const n = await this.#it.next();
    if (n.done) {
      this.done = true;
      return false;
    }
    this.buf = this.buf.length ? Buffer.concat([this.buf, n.value]) : n.value;
    return true;
  }
}

/**
 * The head of a multipart/mixed media answer read from `r`: the JSON part and the headers of the file part, with
 * `r.buf` left at the first byte of the file. At most `cap` bytes are read for all that.
 */
export async function readHead(r: Reader, boundary: string, cap: number): Promise<Record<string, string>> {
  for (;;) {
    const parts = headOf(r.buf, boundary);
    if (parts) {
      r.buf = r.buf.subarray(parts.fileStart);
      return parts.headers;
    }
    if (r.buf.length > cap) throw new Error(`no file part in the first ${cap} bytes`);
    if (!(await r.more())) throw new Error("truncated multipart body");
  }
}

function headOf(buf: Buffer, boundary: string): { headers: Record<string, string>; fileStart: number } | null {
  const delim = Buffer.from(`--${boundary}`);
  const first = buf.indexOf(delim);
  if (first < 0) return null;
  const line1 = buf.indexOf("\r\n", first);
  if (line1 < 0) return null;
  const second = buf.indexOf(Buffer.concat([Buffer.from("\r\n"), delim]), line1);
  if (second < 0) return null;
  // The JSON part's headers end at the first empty line (with none: right after the boundary line).
  const metaEnd = buf.indexOf("\r\n\r\n", line1);
  const json = metaEnd < 0 || metaEnd > second ? "" : buf.subarray(metaEnd + 4, second).toString("utf8");
  try {
    JSON.parse(json);
  } catch {
    throw new Error("the first part is not JSON");
  }
  const line2 = buf.indexOf("\r\n", second + 2);
  if (line2 < 0) return null;
  // The end of the file part's headers (with none, the boundary line's CRLF and the empty line's are this).
  const headEnd = buf.indexOf("\r\n\r\n", line2);
  if (headEnd < 0) return null;
  const headers: Record<string, string> = {};
  for (const line of buf
    .subarray(line2 + 2, headEnd)
    .toString("latin1")
    .split("\r\n")) {
    const c = line.indexOf(":");
    if (c > 0) headers[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim();
  }
  return { headers, fileStart: headEnd + 4 };
}

/** The file part's bytes as they arrive, up to the closing boundary; more than `limit` of them throws `tooLarge`. */
export async function* fileBytes(
  r: Reader,
  boundary: string,
  limit: number,
  tooLarge: () => Error,
): AsyncGenerator<Buffer> {
  const end = Buffer.from(`\r\n--${boundary}`);
  let sent = 0;
  const emit = (b: Buffer) => {
    sent += b.length;
    if (sent > limit) throw tooLarge();
    return b;
  };
  for (;;) {
    const at = r.buf.indexOf(end);
    if (at >= 0) {
      if (at > 0) yield emit(r.buf.subarray(0, at));
      return;
    }
    // Keep what could be the start of the closing boundary.
    const safe = r.buf.length - (end.length - 1);
    if (safe > 0) {
      yield emit(Buffer.from(r.buf.subarray(0, safe)));
      r.buf = r.buf.subarray(safe);
    }
    if (!(await r.more())) throw new Error("multipart body without its closing boundary");
  }
}

async function fetchRemote(hs: Homeserver, serverName: string, mediaId: string, id: string): Promise<MediaRow> {
  const limit = hs.config.media.maxUploadBytes;
  const tooLarge = () =>
    new AmiError(
      "M_TOO_LARGE",
      `Remote media of ${serverName} is larger than this server's limit of ${limit} bytes`,
      {},
      502,
    );
  const bad = (why: string) => new AmiError("AMI_UNAVAILABLE", `${serverName} sent bad media: ${why}`, {}, 502);
  const res = await hs.federation.client.requestStream(serverName, {
    method: "GET",
    path: `/_matrix/federation/v1/media/download/${encodeURIComponent(mediaId)}`,
  });
  try {
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) {
      const r = new Reader(res);
      while (r.buf.length < FRAMING_BYTES && (await r.more()));
      let json: unknown = null;
      try {
        json = JSON.parse(r.buf.toString("utf8"));
      } catch {}
      throw remoteError(serverName, status, json);
    }
    const announced = Number(res.headers["content-length"]);
    if (announced > limit + FRAMING_BYTES) throw tooLarge();
    const ct = String(res.headers["content-type"] ?? "");
    const boundary = /^multipart\/mixed\s*;.*boundary="?([^";]+)"?/i.exec(ct)?.[1];
    if (!boundary) throw bad(`expected multipart/mixed, got '${ct.slice(0, 100)}'`);
    const reader = new Reader(res);
    const fileHeaders = await readHead(reader, boundary, FRAMING_BYTES).catch((e: Error) => {
      throw bad(e.message);
    });
    const filename = filenameOf(fileHeaders["content-disposition"]);
    if (fileHeaders.location) {
      res.destroy();
      // The bytes are elsewhere: fetched under the same address policy as every outgoing request.
      const got = await safeFetch(checkUrl(fileHeaders.location), {
        policy: new AddressPolicy(hs.config.federation.ipRangeAllowlist, []),
        maxBytes: limit,
        signal: AbortSignal.timeout(hs.config.federation.requestTimeoutMs),
      });
      if (got.status !== 200) throw bad(`its Location answered ${got.status}`);
      if (got.truncated) throw tooLarge();
      return await store(hs, id, serverName, got.body, got.contentType, filename);
    }
    const contentType = fileHeaders["content-type"] || "application/octet-stream";
    const source = fileBytes(reader, boundary, limit, tooLarge);
    return await store(hs, id, serverName, source, contentType, filename).catch((e) => {
      throw e instanceof AmiError ? e : bad((e as Error).message);
    });
  } finally {
    res.destroy();
  }
}

/** The file into the content-addressed store and its cache row (as an upload, client/media-upload.ts). */
async function store(
  hs: Homeserver,
  id: string,
  serverName: string,
  bytes: Buffer | AsyncIterable<Buffer>,
  contentType: string,
  filename: string | null,
): Promise<MediaRow> {
  // Into the content-addressed store, held for the cache row (as an upload is, client/media-upload.ts).
  const put = await hs.cas.put(bytes, { hold: mediaHold(id) });
  const row: MediaRow = {
    mediaId: id,
    uploader: serverName,
    contentType: contentType.slice(0, 255),
    filename,
    size: put.size,
    sha256: put.sha256,
    createdTs: Date.now(),
    quarantinedBy: null,
  };
  try {
    await hs.store.media.putMedia(row);
    return row;
  } catch (e) {
    // Fetched twice at once (two workers): the other copy is as good, and when its bytes are the same (the same
    // file, as a rule) its row relies on the very hold this put took, which stays.
    const other = await releaseLostPut(hs, id, put);
    if (!(e instanceof AmiError && e.code === "M_CANNOT_OVERWRITE_MEDIA")) throw e;
    if (!other) throw new AmiError("M_UNKNOWN", "remote media was not stored");
    return other;
  }
}
