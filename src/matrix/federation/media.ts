/**
 * Federated media, the serving side (spec server-server content_repository.yaml, v1.11+): another server fetches a
 * local file or a thumbnail of it, authenticated by X-Matrix. The answer is multipart/mixed: a JSON metadata part
 * (empty: no fields are defined yet), then the bytes with their Content-Type and Content-Disposition.
 */
import { Readable } from "node:stream";
import { contentDisposition, findLocal, thumbnail } from "../client/media.ts";
import { randomString } from "../events/ids.ts";
import type { Reply, Route } from "../http/types.ts";
import { signedRoute } from "./routes.ts";

/** The multipart/mixed answer around `bytes` (a buffer or a stream of `size` bytes). */
function multipart(contentType: string, disposition: string, size: number, bytes: Buffer | Readable): Reply {
  const b = randomString(32);
  const head = Buffer.from(
    `--${b}\r\nContent-Type: application/json\r\n\r\n{}\r\n` +
      `--${b}\r\nContent-Type: ${contentType}\r\nContent-Disposition: ${disposition}\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${b}--\r\n`);
  async function* body() {
    yield head;
    if (Buffer.isBuffer(bytes)) yield bytes;
    else for await (const c of bytes) yield c as Buffer;
    yield tail;
  }
  return {
    status: 200,
    body: Readable.from(body()),
    headers: {
      "Content-Type": `multipart/mixed; boundary=${b}`,
      "Content-Length": String(head.length + size + tail.length),
    },
  };
}

export const mediaRoutes: Route[] = [
  /** GET /_matrix/federation/v1/media/download/{mediaId} */
  signedRoute({
    method: "GET",
    paths: ["/_matrix/federation/v1/media/download/{mediaId}"],
    holdsOpen: true,
    async handler(req) {
      const found = await findLocal(req, req.params.mediaId);
      const { contentType, filename } = found.row;
      return multipart(contentType, contentDisposition(contentType, filename), found.size, found.open());
    },
  }),
  /** GET /_matrix/federation/v1/media/thumbnail/{mediaId} (width, height, method, animated as for clients) */
  signedRoute({
    method: "GET",
    paths: ["/_matrix/federation/v1/media/thumbnail/{mediaId}"],
    holdsOpen: true,
    async handler(req) {
      const t = (await thumbnail(req, (r) => findLocal(r, r.params.mediaId))) as {
        body: Buffer;
        headers: Record<string, string>;
      };
      return multipart(t.headers["Content-Type"], t.headers["Content-Disposition"], t.body.length, t.body);
    },
  }),
];
