/**
 * The end-to-end-encryption sections of a /sync response (sync.yaml): to_device, device_lists,
 * device_one_time_keys_count and device_unused_fallback_key_types.
 *
 * To-device messages are acknowledged by the since token: a client that sends `since = N` has every
 * message with stream <= N, so those are deleted now; every message with stream <= upto is (re)delivered.
 * A response that was lost is therefore delivered again, and a message is never dropped before the client
 * moved past it.
 */
import type { Homeserver } from "../../hs.ts";
import { deviceListsBetween } from "../keys.ts";
import type { Requester } from "../requester.ts";
import type { ToDeviceEvent } from "./types.ts";

export interface E2eeSync {
  to_device: { events: ToDeviceEvent[] };
  device_lists: { changed: string[]; left: string[] };
  device_one_time_keys_count: Record<string, number>;
  device_unused_fallback_key_types: string[];
  /** Nothing here should end a long-poll early (key counts alone never do). */
  empty: boolean;
}

/**
 * `sinceStream`: the stream part of the request's since token (null on an initial sync); `uptoStream`: the
 * snapshot the response is computed at (its next_batch). `sharedUsers`: users joined to a room the requester is
 * joined to, when the caller has them already (computed here otherwise).
 */
export async function e2eeSync(
  hs: Homeserver,
  requester: Requester,
  sinceStream: number | null,
  uptoStream: number,
  sharedUsers?: Set<string>,
): Promise<E2eeSync> {
  const { userId, deviceId } = requester;
  const keys = hs.store.keys;
  const [messages, lists, counts, fallback] = await Promise.all([
    keys.takeToDeviceMessages(userId, deviceId, sinceStream ?? 0, uptoStream),
    sinceStream === null || sinceStream >= uptoStream
      ? { changed: [], left: [] }
      : deviceListsBetween(hs, userId, sinceStream, uptoStream, sharedUsers),
    keys.countOneTimeKeys(userId, deviceId),
    keys.unusedFallbackKeyTypes(userId, deviceId),
  ]);
  return {
    to_device: { events: messages.map((m) => ({ sender: m.sender, type: m.type, content: m.content })) },
    device_lists: lists,
    device_one_time_keys_count: { signed_curve25519: 0, ...counts },
    device_unused_fallback_key_types: fallback,
    empty: messages.length === 0 && lists.changed.length === 0 && lists.left.length === 0,
  };
}
