/** One room: header (back on a phone, name, topic, invite), timeline, who is typing, composer. */
import {
  type MatrixClient,
  MatrixEventEvent,
  type Room,
  RoomEvent,
  RoomMemberEvent,
  RoomStateEvent,
} from "matrix-js-sdk";
import { useEffect, useRef, useState } from "preact/hooks";
import { errorText } from "../format.ts";
import { useClientEvents } from "../hooks.ts";
import { Composer } from "./composer.tsx";
import { LockIcon } from "./icons.tsx";
import { Timeline } from "./timeline.tsx";

export const topicOf = (r: Room): string => r.currentState.getStateEvents("m.room.topic", "")?.getContent().topic ?? "";

const EVENTS = [
  RoomEvent.Timeline,
  RoomEvent.TimelineReset,
  RoomEvent.LocalEchoUpdated,
  RoomEvent.Receipt,
  RoomEvent.Name,
  RoomEvent.Redaction,
  RoomMemberEvent.Typing,
  RoomStateEvent.Members,
  MatrixEventEvent.Decrypted,
];

export function RoomView({ client, room, onBack }: { client: MatrixClient; room: Room; onBack: () => void }) {
  useClientEvents(client, EVENTS);
  const [inviting, setInviting] = useState(false);
  const me = client.getUserId()!;

  // Read receipt for the newest event from the server, while the room is on screen.
  const events = room.getLiveTimeline().getEvents();
  const newest = [...events].reverse().find((e) => e.getId()?.startsWith("$") && !e.status);
  useEffect(() => {
    if (!newest || document.visibilityState !== "visible" || room.hasUserReadEvent(me, newest.getId()!)) return;
    client.sendReadReceipt(newest).catch(() => {});
  });

  const typing = room
    .getMembers()
    .filter((m) => m.typing && m.userId !== me)
    .map((m) => m.name);

  return (
    <>
      <header class="bar room-head">
        <button type="button" class="back" onClick={onBack} aria-label="Back to room list">
          ←
        </button>
        <div class="title">
          <h2>
            {room.hasEncryptionStateEvent() && <LockIcon label="encrypted" />}
            {room.name}
          </h2>
          <p class="topic">
            {topicOf(room) || `${room.getJoinedMemberCount()} member${room.getJoinedMemberCount() === 1 ? "" : "s"}`}
          </p>
        </div>
        <button type="button" onClick={() => setInviting((v) => !v)} aria-expanded={inviting}>
          Invite
        </button>
      </header>
      {inviting && <InviteForm client={client} room={room} onDone={() => setInviting(false)} />}
      <Timeline client={client} room={room} />
      <p class="typing" aria-live="polite">
        {typing.length === 0
          ? ""
          : typing.length === 1
            ? `${typing[0]} is typing…`
            : `${typing.slice(0, -1).join(", ")} and ${typing.at(-1)} are typing…`}
      </p>
      <Composer client={client} room={room} />
    </>
  );
}

function InviteForm({ client, room, onDone }: { client: MatrixClient; room: Room; onDone: () => void }) {
  const [status, setStatus] = useState<{ text: string; error?: boolean }>({ text: "" });
  const field = useRef<HTMLInputElement>(null);
  // The form opens from the Invite button: move focus into it, as a disclosure should.
  useEffect(() => field.current?.focus(), []);
  const submit = async (e: Event) => {
    e.preventDefault();
    const input = (e.currentTarget as HTMLFormElement).elements.namedItem("invitee") as HTMLInputElement;
    const userId = input.value.trim();
    try {
      await client.invite(room.roomId, userId);
      setStatus({ text: `Invited ${userId}.` });
      input.value = "";
      setTimeout(onDone, 1500);
    } catch (err) {
      setStatus({ text: errorText(err), error: true });
    }
  };
  return (
    <form class="invite-form" onSubmit={submit} aria-label={`Invite someone to ${room.name}`}>
      <label for="invitee">User ID</label>
      <input ref={field} id="invitee" name="invitee" required placeholder="@bob:localhost" />
      <button type="submit">Send invite</button>
      <p role={status.error ? "alert" : "status"} class={status.error ? "error" : "ok"}>
        {status.text}
      </p>
    </form>
  );
}
