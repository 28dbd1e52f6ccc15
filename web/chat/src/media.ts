/**
 * Authenticated media: downloads go to /_matrix/client/v1/media with the access token in a header (an <img src>
 * cannot send one), so the bytes are fetched and shown through blob: URLs, cached per session.
 */
import type { MatrixClient } from "matrix-js-sdk";
import { decryptAttachment, type EncryptedFile, encryptAttachment } from "./attachments.ts";

/** What a message's content says about its media: a plain mxc URL, or an encrypted file. */
export interface MediaRef {
  mxc: string;
  file?: EncryptedFile;
  mimetype?: string;
}

export function mediaRefOf(content: Record<string, any>): MediaRef | null {
  if (content.file?.url) return { mxc: content.file.url, file: content.file, mimetype: content.info?.mimetype };
  if (typeof content.url === "string") return { mxc: content.url, mimetype: content.info?.mimetype };
  return null;
}

export async function fetchMedia(client: MatrixClient, ref: MediaRef): Promise<Blob> {
  const url = client.mxcUrlToHttp(ref.mxc, undefined, undefined, undefined, false, true, true);
  if (!url) throw new Error(`not a media URL: ${ref.mxc}`);
  const r = await fetch(url, { headers: { Authorization: `Bearer ${client.getAccessToken()}` } });
  if (!r.ok) throw new Error(`download failed: HTTP ${r.status}`);
  const type = ref.mimetype ?? r.headers.get("content-type") ?? "application/octet-stream";
  if (!ref.file) return new Blob([await r.arrayBuffer()], { type });
  return new Blob([await decryptAttachment(await r.arrayBuffer(), ref.file)], { type });
}

const blobUrls = new Map<string, Promise<string>>();

/** A blob: URL for the media, fetched once per session. */
export function blobUrl(client: MatrixClient, ref: MediaRef): Promise<string> {
  let p = blobUrls.get(ref.mxc);
  if (!p) {
    p = fetchMedia(client, ref).then((b) => URL.createObjectURL(b));
    // A failed download may succeed later (server restart): do not cache failures.
    p.catch(() => blobUrls.delete(ref.mxc));
    blobUrls.set(ref.mxc, p);
  }
  return p;
}

export function forgetBlobUrls(): void {
  for (const p of blobUrls.values()) p.then((u) => URL.revokeObjectURL(u)).catch(() => {});
  blobUrls.clear();
}

/** Save a media message to disk through a temporary link. */
export async function download(client: MatrixClient, ref: MediaRef, name: string): Promise<void> {
  const a = document.createElement("a");
  a.href = await blobUrl(client, ref);
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
}

async function imageSize(file: File): Promise<{ w: number; h: number } | undefined> {
  try {
    const bmp = await createImageBitmap(file);
    const size = { w: bmp.width, h: bmp.height };
    bmp.close();
    return size;
  } catch {
    return undefined;
  }
}

/** Upload a file (encrypted first in an encrypted room) and send it as m.image or m.file (in a thread if given). */
export async function sendFile(client: MatrixClient, roomId: string, file: File, threadId?: string): Promise<void> {
  const type = file.type || "application/octet-stream";
  const isImage = type.startsWith("image/");
  const info: Record<string, unknown> = { mimetype: type, size: file.size };
  if (isImage) Object.assign(info, await imageSize(file));
  const content: Record<string, unknown> = { msgtype: isImage ? "m.image" : "m.file", body: file.name, info };
  if (client.getRoom(roomId)?.hasEncryptionStateEvent()) {
    const { data, info: enc } = await encryptAttachment(await file.arrayBuffer());
    const up = await client.uploadContent(new Blob([data]), {
      type: "application/octet-stream",
      includeFilename: false,
    });
    content.file = { ...enc, url: up.content_uri };
  } else {
    const up = await client.uploadContent(file, { name: file.name, type });
    content.url = up.content_uri;
  }
  await client.sendMessage(roomId, threadId ?? null, content as any);
}
