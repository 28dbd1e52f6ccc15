/** Presence writes (spec: "Presence"), shared by PUT /presence/{userId}/status and /sync `set_presence`. */

import type { JsonObject } from "../../events/types.ts";
import { sendPresenceEdu } from "../../federation/edus-out.ts";
import type { Homeserver } from "../../hs.ts";
import { ACTIVE_WINDOW_MS } from "./extras.ts";

export const PRESENCE_STATES = ["online", "offline", "unavailable"] as const;
export type PresenceState = (typeof PRESENCE_STATES)[number];

/** Set a user's presence; `statusMsg` undefined keeps the current message. Goes through the stream writer. */
export async function setPresence(
  hs: Homeserver,
  userId: string,
  presence: PresenceState,
  statusMsg?: string | null,
): Promise<void> {
  const msg = await hs.stream.write(
    async (stream) => {
      const cur = await hs.store.ephemeral.getPresence(userId);
      const m = statusMsg === undefined ? (cur?.statusMsg ?? null) : statusMsg;
      await hs.store.ephemeral.setPresence({
        userId,
        presence,
        statusMsg: m,
        lastActiveTs: Date.now(),
        stream,
      });
      return m;
    },
    { kind: "presence", userId },
  );
  // A local user's change goes to the servers sharing a room with them (a remote user's came from there).
  sendPresenceEdu(hs, userId, presence, msg);
}

/**
 * /sync marks its user online (or unavailable) unless told `offline`. Only a change of state, or an online user's
 * activity going stale, is written: every write wakes the syncs of everyone sharing a room.
 */
export async function touchPresence(hs: Homeserver, userId: string, setPresenceParam: string | null): Promise<void> {
  if (!hs.config.presence.enabled || setPresenceParam === "offline") return;
  const want: PresenceState = setPresenceParam === "unavailable" ? "unavailable" : "online";
  const cur = await hs.store.ephemeral.getPresence(userId);
  if (cur && cur.presence === want && (want !== "online" || Date.now() - cur.lastActiveTs < ACTIVE_WINDOW_MS / 2))
    return;
  await setPresence(hs, userId, want);
}

export async function getPresence(hs: Homeserver, userId: string): Promise<JsonObject> {
  const p = hs.config.presence.enabled ? await hs.store.ephemeral.getPresence(userId) : null;
  if (!p) return { presence: "offline" };
  const ago = Math.max(0, Date.now() - p.lastActiveTs);
  const out: JsonObject = {
    presence: p.presence,
    last_active_ago: ago,
    currently_active: p.presence === "online" && ago < ACTIVE_WINDOW_MS,
  };
  if (p.statusMsg !== null) out.status_msg = p.statusMsg;
  return out;
}
