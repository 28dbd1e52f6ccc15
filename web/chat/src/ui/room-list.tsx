/** Joined rooms (most recent activity first, unread counts, mentions marked) and pending invites (accept / decline). */
import {
  ClientEvent,
  KnownMembership,
  type MatrixClient,
  NotificationCountType,
  type Room,
  RoomEvent,
} from "matrix-js-sdk";
import { useState } from "preact/hooks";
import { errorText } from "../format.ts";
import { useClientEvents } from "../hooks.ts";
import { LockIcon } from "./icons.tsx";
import { topicOf } from "./room-view.tsx";

const EVENTS = [
  ClientEvent.Room,
  ClientEvent.DeleteRoom,
  RoomEvent.Timeline,
  RoomEvent.Name,
  RoomEvent.MyMembership,
  RoomEvent.UnreadNotifications,
  RoomEvent.Receipt,
  RoomEvent.LocalEchoUpdated,
];

const lastActive = (r: Room) => r.getLastActiveTimestamp() || 0;

function preview(r: Room): string {
  const events = r.getLiveTimeline().getEvents();
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i];
    if (e.getType() === "m.room.message" || e.isEncrypted()) {
      const body = e.getContent().body;
      const who = e.sender?.name ?? e.getSender();
      return typeof body === "string" ? `${who}: ${body}` : `${who}: (encrypted)`;
    }
  }
  return topicOf(r);
}

export function RoomList(props: { client: MatrixClient; selected: string | null; onSelect: (id: string) => void }) {
  const { client } = props;
  useClientEvents(client, EVENTS);
  const [error, setError] = useState("");
  const rooms = client.getRooms();
  const joined = rooms
    .filter((r) => r.getMyMembership() === KnownMembership.Join)
    .sort((a, b) => lastActive(b) - lastActive(a));
  const invites = rooms.filter((r) => r.getMyMembership() === KnownMembership.Invite);

  const act = async (fn: () => Promise<unknown>) => {
    setError("");
    try {
      await fn();
    } catch (e) {
      setError(errorText(e));
    }
  };

  return (
    <nav class="rooms" aria-label="Room list">
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {invites.length > 0 && (
        <section aria-labelledby="invites-h">
          <h2 id="invites-h">Invites</h2>
          <ul>
            {invites.map((r) => (
              <li key={r.roomId} class="invite">
                <span class="name">{r.name}</span>
                <span class="actions">
                  <button
                    type="button"
                    aria-label={`Accept invite to ${r.name}`}
                    onClick={() => act(async () => props.onSelect((await client.joinRoom(r.roomId)).roomId))}
                  >
                    Accept
                  </button>
                  <button
                    type="button"
                    class="quiet"
                    aria-label={`Decline invite to ${r.name}`}
                    onClick={() => act(() => client.leave(r.roomId))}
                  >
                    Decline
                  </button>
                </span>
              </li>
            ))}
          </ul>
        </section>
      )}
      <h2 id="rooms-h">Rooms</h2>
      {joined.length === 0 && <p class="empty">No rooms yet.</p>}
      <ul aria-labelledby="rooms-h">
        {joined.map((r) => {
          const unread = r.getUnreadNotificationCount(NotificationCountType.Total);
          const mentions = r.getUnreadNotificationCount(NotificationCountType.Highlight);
          const current = r.roomId === props.selected;
          return (
            <li key={r.roomId}>
              <button
                type="button"
                class="room-item"
                aria-current={current ? "true" : undefined}
                onClick={() => props.onSelect(r.roomId)}
              >
                <span class="name">
                  {r.hasEncryptionStateEvent() && <LockIcon label="encrypted" />}
                  {r.name}
                </span>
                {unread > 0 && !current && (
                  <span class={mentions > 0 ? "badge highlight" : "badge"}>
                    {unread}
                    <span class="visually-hidden"> unread{mentions > 0 ? `, ${mentions} mentioning you` : ""}</span>
                  </span>
                )}
                <span class="preview">{preview(r)}</span>
              </button>
            </li>
          );
        })}
      </ul>
    </nav>
  );
}
