/** Client account data (spec: "Client Config") and room tags (spec: "Room Tagging"); delivered by /sync. */
import { AmiError } from "../../../core/errors.ts";
import type { EventContent, JsonObject } from "../../events/types.ts";
import type { Homeserver } from "../../hs.ts";
import { getRuleset, PUSH_RULES_TYPE, pushRulesContent } from "../push-rules.ts";
import { FULLY_READ } from "./receipts.ts";

/** Types the server manages itself: clients must use their own APIs (spec: 405 M_BAD_JSON). */
const SERVER_MANAGED = new Set([FULLY_READ, PUSH_RULES_TYPE]);

export function checkWritableType(type: string): void {
  if (SERVER_MANAGED.has(type)) throw new AmiError("M_BAD_JSON", `Cannot set ${type} through this API`, {}, 405);
  if (type.startsWith("ami."))
    throw new AmiError("M_BAD_JSON", `The 'ami.' namespace is reserved for the server`, {}, 405);
  if (type.length === 0 || type.length > 255) throw new AmiError("M_INVALID_PARAM", "Invalid account data type");
}

export async function putAccountData(
  hs: Homeserver,
  userId: string,
  roomId: string | null,
  type: string,
  content: EventContent,
): Promise<void> {
  await hs.stream.write((stream) => hs.store.accountData.setAccountData({ userId, roomId, type, content, stream }), {
    kind: "users",
    userIds: [userId],
  });
}

export async function getAccountDataContent(
  hs: Homeserver,
  userId: string,
  roomId: string | null,
  type: string,
): Promise<EventContent> {
  if (roomId === null && type === PUSH_RULES_TYPE) return pushRulesContent(await getRuleset(hs, userId));
  const row = type.startsWith("ami.") ? null : await hs.store.accountData.getAccountData(userId, roomId, type);
  if (!row) throw new AmiError("M_NOT_FOUND", "Account data not found");
  return row.content;
}

export const TAG_TYPE = "m.tag";

export async function getTags(hs: Homeserver, userId: string, roomId: string): Promise<JsonObject> {
  const row = await hs.store.accountData.getAccountData(userId, roomId, TAG_TYPE);
  const tags = row?.content.tags;
  return tags && typeof tags === "object" && !Array.isArray(tags) ? tags : {};
}

/** Add/replace (content) or remove (null) one tag, serialised through the stream writer. */
export async function changeTag(
  hs: Homeserver,
  userId: string,
  roomId: string,
  tag: string,
  content: JsonObject | null,
): Promise<void> {
  await hs.stream.write(
    async (stream) => {
      const tags = { ...(await getTags(hs, userId, roomId)) };
      if (content === null) {
        if (!(tag in tags)) return;
        delete tags[tag];
      } else tags[tag] = content;
      await hs.store.accountData.setAccountData({ userId, roomId, type: TAG_TYPE, content: { tags }, stream });
    },
    { kind: "users", userIds: [userId] },
  );
}
