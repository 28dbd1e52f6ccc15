/** Spec sections "Client Config" (account-data.yaml) and "Room Tagging" (tags.yaml). */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { isValidRoomId } from "../events/ids.ts";
import { json, type MatrixRequest, type Route } from "../http/types.ts";
import {
  changeTag,
  checkWritableType,
  getAccountDataContent,
  getTags,
  putAccountData,
} from "../service/sync/account-data.ts";
import { parseBody } from "../validate.ts";

function ownUser(req: MatrixRequest): string {
  if (req.params.userId !== req.requester!.userId)
    throw new AmiError("M_FORBIDDEN", "Cannot access the account data of other users");
  return req.params.userId;
}

function roomParam(req: MatrixRequest): string {
  const { roomId } = req.params;
  if (!isValidRoomId(roomId)) throw new AmiError("M_INVALID_PARAM", "Invalid room ID");
  return roomId;
}

const tagBody = z.object({ order: z.number().min(0).max(1).optional() }).loose();

export const routes: Route[] = [
  /** PUT /_matrix/client/v3/user/{userId}/account_data/{type} */
  {
    method: "PUT",
    paths: ["/_matrix/client/v3/user/{userId}/account_data/{type}"],
    auth: "required",
    async handler(req) {
      const userId = ownUser(req);
      checkWritableType(req.params.type);
      await putAccountData(req.hs, userId, null, req.params.type, req.body);
      return json({});
    },
  },
  /** GET /_matrix/client/v3/user/{userId}/account_data/{type} */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/user/{userId}/account_data/{type}"],
    auth: "required",
    async handler(req) {
      return json(await getAccountDataContent(req.hs, ownUser(req), null, req.params.type));
    },
  },
  /** PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type} */
  {
    method: "PUT",
    paths: ["/_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}"],
    auth: "required",
    async handler(req) {
      const userId = ownUser(req);
      const roomId = roomParam(req);
      checkWritableType(req.params.type);
      await putAccountData(req.hs, userId, roomId, req.params.type, req.body);
      return json({});
    },
  },
  /** GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type} */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}"],
    auth: "required",
    async handler(req) {
      return json(await getAccountDataContent(req.hs, ownUser(req), roomParam(req), req.params.type));
    },
  },
  /** GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags */
  {
    method: "GET",
    paths: ["/_matrix/client/v3/user/{userId}/rooms/{roomId}/tags"],
    auth: "required",
    async handler(req) {
      return json({ tags: await getTags(req.hs, ownUser(req), roomParam(req)) });
    },
  },
  /** PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag} */
  {
    method: "PUT",
    paths: ["/_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}"],
    auth: "required",
    async handler(req) {
      const userId = ownUser(req);
      const roomId = roomParam(req);
      const content = parseBody(tagBody, req.body);
      if (req.params.tag.length > 255) throw new AmiError("M_INVALID_PARAM", "Tag too long");
      await changeTag(req.hs, userId, roomId, req.params.tag, content);
      return json({});
    },
  },
  /** DELETE /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag} */
  {
    method: "DELETE",
    paths: ["/_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}"],
    auth: "required",
    async handler(req) {
      await changeTag(req.hs, ownUser(req), roomParam(req), req.params.tag, null);
      return json({});
    },
  },
];
