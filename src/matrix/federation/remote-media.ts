/**
 * The remote media cache (as Synapse's): another server's file, asked for by a client of ours
 * (/_matrix/client/v1/media/download/{serverName}/{mediaId}), is fetched once over federation
 * (/_matrix/federation/v1/media/download, a multipart/mixed answer: JSON metadata, then the bytes or a Location to
 * fetch them from) into our content-addressed store, under a media row `remote:<server>/<mediaId>` that no local
 * media ID can name (local IDs are [A-Za-z0-9_-]). Later downloads, and thumbnails made here, come from that copy,
 * whether the origin is up or not. Files above matrix.media.maxUploadBytes are refused (M_TOO_LARGE) as they come in;
 * the answer is held in memory up to that bound, not streamed to disk while it arrives.
 */
import { AmiError } from "../../core/errors.ts";
import { isValidServerName } from "../events/ids.ts";
import type { Homeserver } from "../hs.ts";
import { mediaHold } from "../service/media.ts";
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

async function fetchRemote(hs: Homeserver, serverName: string, mediaId: string, id: string): Promise<MediaRow> {
  const limit = hs.config.media.maxUploadBytes;
  const tooLarge = () =>
    new AmiError(
      "M_TOO_LARGE",
      `Remote media of ${serverName} is larger than this server's limit of ${limit} bytes`,
      {},
      502,
    );
  const res = await hs.federation.client
    .requestBytes(
      serverName,
      { method: "GET", path: `/_matrix/federation/v1/media/download/${encodeURIComponent(mediaId)}` },
      limit + FRAMING_BYTES,
    )
    .catch((e) => {
      throw e instanceof AmiError && e.code === "M_TOO_LARGE" ? tooLarge() : e;
    });
  if (res.status < 200 || res.status >= 300) {
    let json: unknown = null;
    try {
      json = JSON.parse(res.body.toString("utf8"));
    } catch {}
    throw remoteError(serverName, res.status, json);
  }
  const bad = (why: string) => new AmiError("AMI_UNAVAILABLE", `${serverName} sent bad media: ${why}`, {}, 502);
  const ct = String(res.headers["content-type"] ?? "");
  const boundary = /^multipart\/mixed\s*;.*boundary="?([^";]+)"?/i.exec(ct)?.[1];
  if (!boundary) throw bad(`expected multipart/mixed, got '${ct.slice(0, 100)}'`);
  let parts: Part[];
  try {
    parts = parseMultipart(res.body, boundary);
  } catch (e) {
    throw bad((e as Error).message);
  }
  if (parts.length !== 2) throw bad(`${parts.length} parts, expected 2`);
  try {
    JSON.parse(parts[0].body.toString("utf8"));
  } catch {
    throw bad("the first part is not JSON");
  }
  const file = parts[1];
  let bytes = file.body;
  let contentType = file.headers["content-type"] || "application/octet-stream";
  if (file.headers.location) {
    // The bytes are elsewhere: fetched under the same address policy as every outgoing request.
    const got = await safeFetch(checkUrl(file.headers.location), {
      policy: new AddressPolicy(hs.config.federation.ipRangeAllowlist, []),
      maxBytes: limit,
      signal: AbortSignal.timeout(hs.config.federation.requestTimeoutMs),
    });
    if (got.status !== 200) throw bad(`its Location answered ${got.status}`);
    if (got.truncated) throw tooLarge();
    bytes = got.body;
    contentType = got.contentType;
  }
  if (bytes.length > limit) throw tooLarge();
  // Into the content-addressed store, held for the cache row (as an upload is, client/media-upload.ts).
  const put = await hs.cas.put(bytes, { hold: mediaHold(id) });
  const row: MediaRow = {
    mediaId: id,
    uploader: serverName,
    contentType: contentType.slice(0, 255),
    filename: filenameOf(file.headers["content-disposition"]),
    size: put.size,
    sha256: put.sha256,
    createdTs: Date.now(),
    quarantinedBy: null,
  };
  try {
    await hs.store.media.putMedia(row);
    return row;
  } catch (e) {
    await hs.cas.release(put.id, mediaHold(id)).catch(() => {});
    // Fetched twice at once (two processes): the other copy is as good.
    if (!(e instanceof AmiError && e.code === "M_CANNOT_OVERWRITE_MEDIA")) throw e;
  }
  const other = await hs.store.media.getMedia(id);
  if (!other) throw bad("not stored");
  return other;
}
