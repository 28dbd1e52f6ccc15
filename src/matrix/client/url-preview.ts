/**
 * URL previews (spec "URL previews"): GET /_matrix/client/v1/media/preview_url and the deprecated
 * /_matrix/media/v3/preview_url. The fetching, the network fence and the OpenGraph reading are
 * service/url-preview.ts; the page's image becomes media of the asking user.
 */
import { AmiError } from "../../core/errors.ts";
import { randomString } from "../events/ids.ts";
import { json, type MatrixRequest, type Reply, type Route } from "../http/types.ts";
import { queryInt } from "../validate.ts";
import { legacy } from "./media.ts";
import { commitMedia, mxc } from "./media-upload.ts";

/** GET /media/preview_url: OpenGraph data of a URL, its image stored as media of the asking user. */
async function previewUrl(req: MatrixRequest): Promise<Reply> {
  const { hs } = req;
  // Off (the default, as Synapse): a deliberate refusal, not "unknown endpoint" (this is a spec route).
  if (!hs.media.previews.enabled) throw new AmiError("M_FORBIDDEN", "URL previews are disabled on this server");
  const url = req.query.get("url");
  if (url === null || url === "") throw new AmiError("M_MISSING_PARAM", "'url': missing");
  queryInt(req.query, "ts", 0, 0);
  const uploader = req.requester!.userId;
  const preview = await hs.media.previews.preview(url, async (bytes, contentType) => {
    const mediaId = randomString(24);
    const meta = { mediaId, uploader, contentType, filename: null };
    await commitMedia(hs, bytes, meta, (row) => hs.store.media.putMedia(row));
    return mxc(hs, mediaId);
  });
  return json(preview);
}

export const routes: Route[] = [
  /** GET /_matrix/client/v1/media/preview_url */
  {
    method: "GET",
    paths: ["/_matrix/client/v1/media/preview_url"],
    auth: "required",
    rateLimit: true,
    holdsOpen: true,
    handler: previewUrl,
  },
  /** GET /_matrix/media/v3/preview_url (legacy; the spec requires auth here too) */
  {
    method: "GET",
    paths: legacy("preview_url"),
    auth: "required",
    rateLimit: true,
    holdsOpen: true,
    handler: previewUrl,
  },
];
