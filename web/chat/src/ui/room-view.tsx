/**
 * One room: header (back on a phone, name, topic, threads, search, invite), timeline, who is typing, composer,
 * and a side panel for threads or search (on a phone the panel takes the screen).
 */
import {
  type MatrixClient,
  MatrixEventEvent,
  type Room,
  RoomEvent,
  RoomMemberEvent,
  RoomStateEvent,
  ThreadEvent,
} from "matrix-js-sdk";
import { useEffect, useState } from "preact/hooks";
import { errorText } from "../format.ts";
import { useClientEvents, useEmitterEvents } from "../hooks.ts";
import { Composer, type ComposerMode } from "./composer.tsx";
import { LockIcon } from "./icons.tsx";
import type { MessageActions } from "./message.tsx";
import { SearchPanel } from "./search.tsx";
import { ThreadList, ThreadView } from "./threads.tsx";
import { Timeline } from "./timeline.tsx";
import { UserSearch } from "./user-search.tsx";

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
  MatrixEventEvent.Replaced,
  MatrixEventEvent.RelationsCreated,
];

/** Thread summaries on roots change with thread events, which the room (not the client) emits. */
const ROOM_EVENTS = [ThreadEvent.New, ThreadEvent.Update, ThreadEvent.NewReply, RoomEvent.Redaction];

type Panel = { kind: "threads" } | { kind: "thread"; id: string } | { kind: "search" } | null;

export function RoomView(props: {
  client: MatrixClient;
  room: Room;
  focus?: string;
  onBack: () => void;
  onOpen: (roomId: string, eventId?: string) => void;
}) {
  const { client, room } = props;
  useClientEvents(client, EVENTS);
  useEmitterEvents(room, ROOM_EVENTS);
  const [inviting, setInviting] = useState(false);
  const [panel, setPanel] = useState<Panel>(null);
  const [mode, setMode] = useState<ComposerMode>(null);
  const [focus, setFocus] = useState(props.focus);
  useEffect(() => setFocus(props.focus), [props.focus]);
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

  /** Show an event: in its thread's panel when it is a thread reply, else in the room's timeline. */
  const jump = (eventId: string, threadId?: string) => {
    const root = threadId ?? room.findEventById(eventId)?.threadRootId;
    if (root && root !== eventId) setPanel({ kind: "thread", id: root });
    else setFocus(eventId);
  };
  const actions: MessageActions = {
    reply: (e) => setMode({ kind: "reply", event: e }),
    edit: (e) => setMode({ kind: "edit", event: e }),
    thread: (id) => setPanel({ kind: "thread", id }),
    jump: (id) => jump(id),
  };
  const toggle = (kind: "threads" | "search") =>
    setPanel((p) => (p?.kind === kind || (kind === "threads" && p?.kind === "thread") ? null : { kind }));

  return (
    <>
      <header class="bar room-head">
        <button type="button" class="back" onClick={props.onBack} aria-label="Back to room list">
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
        <button
          type="button"
          onClick={() => toggle("threads")}
          aria-expanded={panel?.kind === "threads" || panel?.kind === "thread"}
        >
          Threads
        </button>
        <button type="button" onClick={() => toggle("search")} aria-expanded={panel?.kind === "search"}>
          Search
        </button>
        <button type="button" onClick={() => setInviting((v) => !v)} aria-expanded={inviting}>
          Invite
        </button>
      </header>
      {inviting && <InviteForm client={client} room={room} onDone={() => setInviting(false)} />}
      <div class={`room-body${panel ? " with-side" : ""}`}>
        <div class="main-col">
          <Timeline client={client} room={room} actions={actions} focus={focus} />
          <p class="typing" aria-live="polite">
            {typing.length === 0
              ? ""
              : typing.length === 1
                ? `${typing[0]} is typing…`
                : `${typing.slice(0, -1).join(", ")} and ${typing.at(-1)} are typing…`}
          </p>
          <Composer client={client} room={room} mode={mode} onMode={setMode} onSent={() => setFocus(undefined)} />
        </div>
        {panel && (
          <aside
            class="side"
            aria-label={panel.kind === "search" ? "Search" : panel.kind === "thread" ? "Thread" : "Threads"}
          >
            <button type="button" class="quiet close-side" onClick={() => setPanel(null)}>
              Close<span class="visually-hidden"> panel</span>
            </button>
            {panel.kind === "threads" && (
              <ThreadList client={client} room={room} onOpen={(id) => setPanel({ kind: "thread", id })} />
            )}
            {panel.kind === "thread" && (
              <ThreadView
                key={panel.id}
                client={client}
                room={room}
                threadId={panel.id}
                actions={actions}
                onBack={() => setPanel({ kind: "threads" })}
              />
            )}
            {panel.kind === "search" && (
              <SearchPanel
                client={client}
                roomId={room.roomId}
                onOpen={(roomId, eventId, threadId) =>
                  roomId === room.roomId ? jump(eventId, threadId) : props.onOpen(roomId, eventId)
                }
              />
            )}
          </aside>
        )}
      </div>
    </>
  );
}

function InviteForm({ client, room, onDone }: { client: MatrixClient; room: Room; onDone: () => void }) {
  const [status, setStatus] = useState<{ text: string; error?: boolean }>({ text: "" });
  const [invitee, setInvitee] = useState("");
  const submit = async (e: Event) => {
    e.preventDefault();
    const userId = invitee.trim();
    if (!userId) return;
    try {
      await client.invite(room.roomId, userId);
      setStatus({ text: `Invited ${userId}.` });
      setInvitee("");
      setTimeout(onDone, 1500);
    } catch (err) {
      setStatus({ text: errorText(err), error: true });
    }
  };
  return (
    <form class="invite-form" onSubmit={submit} aria-label={`Invite someone to ${room.name}`}>
      {/* The form opens from the Invite button: focus moves into it, as a disclosure should. */}
      <UserSearch
        client={client}
        id="invitee"
        label="User to invite"
        value={invitee}
        onInput={setInvitee}
        focusOnMount
      />
      <button type="submit">Send invite</button>
      <p role={status.error ? "alert" : "status"} class={status.error ? "error" : "ok"}>
        {status.text}
      </p>
    </form>
  );
}
