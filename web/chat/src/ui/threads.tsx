/**
 * Threads of a room: the list (newest activity first, reply count, latest reply, unread count per thread)
 * and one open thread (its root, the replies, a composer that posts into the thread). The thread list comes
 * from the server's /threads once per room; new threads and replies arrive through sync.
 */
import {
  Direction,
  type MatrixClient,
  type MatrixEvent,
  NotificationCountType,
  type Room,
  RoomEvent,
  type Thread,
  ThreadEvent,
} from "matrix-js-sdk";
import { useEffect, useState } from "preact/hooks";
import { errorText } from "../format.ts";
import { useEmitterEvents } from "../hooks.ts";
import { messageText } from "../relations.ts";
import { Composer, type ComposerMode } from "./composer.tsx";
import { isShown } from "./event-body.tsx";
import { type MessageActions, MessageItem, MessageItems } from "./message.tsx";

const THREAD_EVENTS = [
  ThreadEvent.New,
  ThreadEvent.Update,
  ThreadEvent.NewReply,
  ThreadEvent.Delete,
  RoomEvent.Timeline,
  RoomEvent.TimelineReset,
  RoomEvent.LocalEchoUpdated,
  RoomEvent.Redaction,
  RoomEvent.UnreadNotifications,
  RoomEvent.Receipt,
];

const latestTs = (t: Thread) => t.replyToEvent?.getTs() ?? t.rootEvent?.getTs() ?? 0;
const senderName = (e: MatrixEvent) => e.sender?.name ?? e.getSender() ?? "";

export function ThreadList(props: { client: MatrixClient; room: Room; onOpen: (id: string) => void }) {
  const { room } = props;
  useEmitterEvents(room, THREAD_EVENTS);
  const [error, setError] = useState("");
  useEffect(() => {
    room.fetchRoomThreads().catch((e) => setError(errorText(e)));
  }, [room]);
  const threads = room
    .getThreads()
    .filter((t) => t.rootEvent && t.length > 0)
    .sort((a, b) => latestTs(b) - latestTs(a));
  return (
    <>
      <h3 id="threads-h">Threads</h3>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {threads.length === 0 && <p class="empty">No threads yet. Use “Reply in thread” on a message to start one.</p>}
      <ul class="thread-list" aria-labelledby="threads-h">
        {threads.map((t) => {
          const unread = room.getThreadUnreadNotificationCount(t.id, NotificationCountType.Total);
          return (
            <li key={t.id}>
              <button type="button" class="thread-item" onClick={() => props.onOpen(t.id)}>
                <span class="root">
                  <span class="sender">{senderName(t.rootEvent!)}</span>: {messageText(t.rootEvent!)}
                </span>
                {unread > 0 && (
                  <span class="badge">
                    {unread}
                    <span class="visually-hidden"> unread</span>
                  </span>
                )}
                <span class="preview">
                  {t.length} {t.length === 1 ? "reply" : "replies"}
                  {t.replyToEvent && ` · ${senderName(t.replyToEvent)}: ${messageText(t.replyToEvent)}`}
                </span>
              </button>
            </li>
          );
        })}
      </ul>
    </>
  );
}

export function ThreadView(props: {
  client: MatrixClient;
  room: Room;
  threadId: string;
  actions: MessageActions;
  onBack: () => void;
}) {
  const { client, room, threadId } = props;
  useEmitterEvents(room, THREAD_EVENTS);
  const [mode, setMode] = useState<ComposerMode>(null);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState("");
  const thread = room.getThread(threadId);
  const root = thread?.rootEvent ?? room.findEventById(threadId);
  const replies = (thread?.events ?? []).filter((e) => e.getId() !== threadId && isShown(e));
  const more = !!thread && thread.liveTimeline.getPaginationToken(Direction.Backward) !== null;

  // A read receipt for the newest reply while the thread is open (matrix-js-sdk sends it as a threaded one).
  const newest = [...replies].reverse().find((e) => e.getId()?.startsWith("$") && !e.status);
  useEffect(() => {
    if (
      !newest ||
      document.visibilityState !== "visible" ||
      room.hasUserReadEvent(client.getUserId()!, newest.getId()!)
    )
      return;
    client.sendReadReceipt(newest).catch(() => {});
  });

  const loadOlder = async () => {
    if (!thread) return;
    setLoading(true);
    setError("");
    try {
      await client.paginateEventTimeline(thread.liveTimeline, { backwards: true, limit: 30 });
    } catch (e) {
      setError(errorText(e));
    } finally {
      setLoading(false);
    }
  };

  // Inside a thread: replies and edits stay here, "reply in thread" makes no sense.
  const actions: MessageActions = {
    reply: (e) => setMode({ kind: "reply", event: e }),
    edit: (e) => setMode({ kind: "edit", event: e }),
    jump: props.actions.jump,
  };
  return (
    <>
      <div class="side-head">
        <button type="button" class="quiet" onClick={props.onBack}>
          ← All threads
        </button>
        <h3 id="thread-h">Thread</h3>
      </div>
      <ol class="timeline thread" role="log" aria-labelledby="thread-h">
        {root && <MessageItem client={client} room={room} event={root} actions={actions} />}
        {more && (
          <li class="history">
            <button type="button" class="quiet" onClick={loadOlder} disabled={loading}>
              {loading ? "Loading older replies…" : "Load older replies"}
            </button>
          </li>
        )}
        {error && (
          <li class="error" role="alert">
            {error}
          </li>
        )}
        <MessageItems client={client} room={room} events={replies} actions={actions} />
      </ol>
      <Composer client={client} room={room} threadId={threadId} mode={mode} onMode={setMode} />
    </>
  );
}
