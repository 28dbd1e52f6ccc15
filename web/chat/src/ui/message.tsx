/**
 * One line of a timeline (the room's or a thread's): sender and time, the quoted event it replies to, the
 * body with an "edited" mark, reactions, the thread summary on a thread root, read receipts, and the actions
 * a person expects on a message (reply, react, edit their own, reply in a thread).
 */
import type { MatrixClient, MatrixEvent, Room } from "matrix-js-sdk";
import { useEffect, useState } from "preact/hooks";
import { errorText, formatTime } from "../format.ts";
import { isEdited, isRealReply, messageText, reactionsOf, replyToId, toggleReaction } from "../relations.ts";
import { EventBody } from "./event-body.tsx";

/** What the person wants to do with a message; the room view routes it to a composer or a panel. */
export interface MessageActions {
  reply: (e: MatrixEvent) => void;
  edit: (e: MatrixEvent) => void;
  /** Open (or start) the thread rooted at this message; absent inside a thread. */
  thread?: (rootId: string) => void;
  /** Scroll to an event (the quoted one of a reply). */
  jump: (eventId: string) => void;
}

export const QUICK_REACTIONS = ["👍", "❤️", "😂", "🎉", "😮", "😢"];

const isMessage = (e: MatrixEvent) => e.getType() === "m.room.message" || e.getType() === "m.room.encrypted";

export function MessageItem(props: {
  client: MatrixClient;
  room: Room;
  event: MatrixEvent;
  prev?: MatrixEvent;
  actions: MessageActions;
  focused?: boolean;
}) {
  const { client, room, event: e, prev, actions } = props;
  const me = client.getUserId()!;
  const [picking, setPicking] = useState(false);
  const [error, setError] = useState("");
  const message = isMessage(e);
  const sameSender =
    prev?.getSender() === e.getSender() &&
    prev?.getType() === "m.room.message" &&
    e.getTs() - prev.getTs() < 5 * 60_000 &&
    !isRealReply(e) &&
    // A thread summary under the previous message ends the group: this one would read as part of it.
    !(actions.thread && room.getThread(prev.getId() ?? "")?.length);
  const id = e.getId();
  const sent = !!id?.startsWith("$");
  const readers = sent ? room.getUsersReadUpTo(e).filter((u) => u !== me && u !== e.getSender()) : [];
  const who = e.sender?.name ?? e.getSender() ?? "";
  const canEdit =
    sent && e.getSender() === me && e.getType() === "m.room.message" && e.getContent().msgtype === "m.text";
  const thread = actions.thread && id ? room.getThread(id) : null;

  const react = (key: string) => {
    setPicking(false);
    setError("");
    toggleReaction(client, room, e, key).catch((err) => setError(errorText(err)));
  };

  return (
    <li
      data-event-id={id}
      class={`${message ? "msg" : "notice"}${e.getSender() === me ? " mine" : ""}${e.status ? " pending" : ""}${props.focused ? " focused" : ""}`}
    >
      {message && !sameSender && (
        <div class="meta">
          <span class="sender">{who}</span>{" "}
          <time dateTime={new Date(e.getTs()).toISOString()}>{formatTime(e.getTs())}</time>
        </div>
      )}
      {isRealReply(e) && <ReplyQuote client={client} room={room} eventId={replyToId(e)!} onJump={actions.jump} />}
      <EventBody client={client} event={e} />
      {isEdited(e) && <span class="edited"> (edited)</span>}
      {e.status && <span class="status">sending…</span>}
      {message && sent && (
        <div class="msg-actions" role="toolbar" aria-label={`Actions for the message from ${who}`}>
          <button type="button" class="quiet" onClick={() => actions.reply(e)}>
            Reply
          </button>
          <button type="button" class="quiet" aria-expanded={picking} onClick={() => setPicking((v) => !v)}>
            React
          </button>
          {canEdit && (
            <button type="button" class="quiet" onClick={() => actions.edit(e)}>
              Edit
            </button>
          )}
          {actions.thread && (
            <button type="button" class="quiet" onClick={() => actions.thread?.(id!)}>
              Reply in thread
            </button>
          )}
        </div>
      )}
      {picking && (
        <fieldset class="picker">
          <legend class="visually-hidden">Pick a reaction</legend>
          {QUICK_REACTIONS.map((k) => (
            <button key={k} type="button" class="quiet" aria-label={`React with ${k}`} onClick={() => react(k)}>
              {k}
            </button>
          ))}
        </fieldset>
      )}
      <Reactions room={room} event={e} me={me} onToggle={react} />
      {thread && thread.length > 0 && (
        <button
          type="button"
          class="thread-summary"
          aria-label={`Open thread, ${thread.length} ${thread.length === 1 ? "reply" : "replies"}`}
          onClick={() => actions.thread?.(thread.id)}
        >
          {thread.length} {thread.length === 1 ? "reply" : "replies"}
          {thread.replyToEvent && (
            <span class="latest">
              {" · "}
              {thread.replyToEvent.sender?.name ?? thread.replyToEvent.getSender()}: {messageText(thread.replyToEvent)}
            </span>
          )}
        </button>
      )}
      {error && (
        <span class="error" role="alert">
          {error}
        </span>
      )}
      {readers.length > 0 && (
        <div class="receipts">Seen by {readers.map((u) => room.getMember(u)?.name ?? u).join(", ")}</div>
      )}
    </li>
  );
}

/** Consecutive timeline lines (each told the one before it, to group messages by sender). */
export function MessageItems(props: {
  client: MatrixClient;
  room: Room;
  events: MatrixEvent[];
  actions: MessageActions;
  focus?: string;
}) {
  return (
    <>
      {props.events.map((e, i) => (
        <MessageItem
          key={e.getId() ?? e.getTxnId()}
          client={props.client}
          room={props.room}
          event={e}
          prev={props.events[i - 1]}
          actions={props.actions}
          focused={!!props.focus && e.getId() === props.focus}
        />
      ))}
    </>
  );
}

function Reactions(props: { room: Room; event: MatrixEvent; me: string; onToggle: (key: string) => void }) {
  const tallies = reactionsOf(props.room, props.event, props.me);
  if (tallies.length === 0) return null;
  return (
    <fieldset class="reactions">
      <legend class="visually-hidden">Reactions</legend>
      {tallies.map((t) => {
        const names = t.senders.map((u) => props.room.getMember(u)?.name ?? u).join(", ");
        return (
          <button
            key={t.key}
            type="button"
            class="reaction"
            aria-pressed={!!t.mine}
            aria-label={`${t.key} ${t.count}${t.mine ? ", including you" : ""}`}
            title={names}
            onClick={() => props.onToggle(t.key)}
          >
            {t.key} <span class="count">{t.count}</span>
          </button>
        );
      })}
    </fieldset>
  );
}

/** Events quoted by replies but not loaded in the timeline, fetched once per session. */
const fetched = new Map<string, Promise<MatrixEvent>>();

function ReplyQuote(props: { client: MatrixClient; room: Room; eventId: string; onJump: (id: string) => void }) {
  const { client, room, eventId } = props;
  const local = room.findEventById(eventId);
  const [remote, setRemote] = useState<MatrixEvent | null>(null);
  const [missing, setMissing] = useState(false);
  useEffect(() => {
    if (local) return;
    let p = fetched.get(eventId);
    if (!p) {
      p = client.fetchRoomEvent(room.roomId, eventId).then((raw) => client.getEventMapper()(raw));
      p.catch(() => fetched.delete(eventId));
      fetched.set(eventId, p);
    }
    p.then(setRemote, () => setMissing(true));
  }, [eventId, !!local]);
  const quoted = local ?? remote;
  const who = quoted ? (room.getMember(quoted.getSender() ?? "")?.name ?? quoted.getSender()) : "";
  return (
    <blockquote class="reply-quote">
      <span class="visually-hidden">In reply to </span>
      {quoted ? (
        <>
          <span class="sender">{who}</span> {quoted.isRedacted() ? "(deleted)" : messageText(quoted) || "(media)"}{" "}
          <button type="button" class="quiet jump" onClick={() => props.onJump(eventId)}>
            Show<span class="visually-hidden"> the replied message</span>
          </button>
        </>
      ) : missing ? (
        "a message that could not be loaded"
      ) : (
        "…"
      )}
    </blockquote>
  );
}
