/**
 * Browser notifications for messages the push rules say notify (spec: push rules evaluated client-side by
 * matrix-js-sdk), shown only while the tab is hidden. Permission is asked from a button (a user gesture, as
 * browsers require); clicking a notification focuses the tab and opens the room.
 */
import {
  type IRoomTimelineData,
  type MatrixClient,
  type MatrixEvent,
  MatrixEventEvent,
  type Room,
  RoomEvent,
} from "matrix-js-sdk";
import { messageText } from "./relations.ts";

export const notificationsSupported = (): boolean => typeof Notification !== "undefined";

/** Ask for permission; resolves to the browser's answer. */
export async function askNotificationPermission(): Promise<NotificationPermission> {
  if (!notificationsSupported()) return "denied";
  return Notification.requestPermission();
}

function show(client: MatrixClient, event: MatrixEvent, room: Room, onOpen: (roomId: string) => void): void {
  if (document.visibilityState !== "hidden" || Notification.permission !== "granted") return;
  if (event.getSender() === client.getUserId() || event.getType() !== "m.room.message") return;
  const actions = client.getPushActionsForEvent(event);
  if (!actions?.notify) return;
  const who = event.sender?.name ?? event.getSender() ?? "";
  const n = new Notification(room.name, {
    body: `${who}: ${messageText(event) || "sent a file"}`,
    tag: event.getId(),
    silent: !actions.tweaks?.sound,
  });
  n.onclick = () => {
    window.focus();
    onOpen(room.roomId);
    n.close();
  };
}

/** Start watching live events; returns the function that stops it. */
export function watchNotifications(client: MatrixClient, onOpen: (roomId: string) => void): () => void {
  const onTimeline = (
    event: MatrixEvent,
    room: Room | undefined,
    toStart: boolean | undefined,
    _removed: boolean,
    data: IRoomTimelineData,
  ) => {
    if (!room || toStart || !data.liveEvent) return;
    // An encrypted message is judged once decrypted (its push rules match the clear content).
    if (event.isBeingDecrypted() || event.getType() === "m.room.encrypted")
      event.once(MatrixEventEvent.Decrypted, () => show(client, event, room, onOpen));
    else show(client, event, room, onOpen);
  };
  client.on(RoomEvent.Timeline, onTimeline);
  return () => client.off(RoomEvent.Timeline, onTimeline);
}
