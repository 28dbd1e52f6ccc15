/**
 * The notifications list (spec: GET /notifications): events the push rules flagged for me, newest first,
 * unread ones marked, highlights (mentions) called out, more on demand; choosing one opens its room at it.
 * Also the switch for browser notifications while the tab is hidden.
 */
import { type IEvent, type MatrixClient, Method } from "matrix-js-sdk";
import { useEffect, useState } from "preact/hooks";
import { errorText, formatTime } from "../format.ts";
import { askNotificationPermission, notificationsSupported } from "../notify.ts";
import { withoutReplyFallback } from "../relations.ts";

interface Notification {
  room_id: string;
  event: Partial<IEvent>;
  read: boolean;
  ts: number;
  actions: unknown[];
}

const isHighlight = (n: Notification) =>
  n.actions.some(
    (a) =>
      typeof a === "object" &&
      a !== null &&
      (a as { set_tweak?: string }).set_tweak === "highlight" &&
      (a as { value?: unknown }).value !== false,
  );

async function fetchNotifications(client: MatrixClient, from?: string) {
  const query: Record<string, string> = { limit: "20" };
  if (from) query.from = from;
  return client.http.authedRequest<{ notifications: Notification[]; next_token?: string }>(
    Method.Get,
    "/notifications",
    query,
  );
}

export function NotificationsPanel(props: {
  client: MatrixClient;
  onOpen: (roomId: string, eventId?: string) => void;
}) {
  const { client } = props;
  const [items, setItems] = useState<Notification[]>([]);
  const [next, setNext] = useState<string | undefined>();
  const [busy, setBusy] = useState(true);
  const [error, setError] = useState("");
  const [permission, setPermission] = useState(notificationsSupported() ? Notification.permission : "denied");

  const load = async (from?: string) => {
    setBusy(true);
    setError("");
    try {
      const r = await fetchNotifications(client, from);
      setItems((old) => (from ? [...old, ...r.notifications] : r.notifications));
      setNext(r.next_token);
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  };
  useEffect(() => {
    void load();
  }, []);

  return (
    <section class="notifications" aria-labelledby="notifs-h">
      <h2 id="notifs-h">Notifications</h2>
      {notificationsSupported() && permission === "default" && (
        <button type="button" onClick={async () => setPermission(await askNotificationPermission())}>
          Enable desktop notifications
        </button>
      )}
      {permission === "denied" && notificationsSupported() && (
        <p class="empty">Desktop notifications are blocked in this browser's site settings.</p>
      )}
      <button type="button" class="quiet" onClick={() => load()} disabled={busy}>
        Refresh
      </button>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {!busy && items.length === 0 && !error && <p class="empty">Nothing new.</p>}
      <ul aria-label="Notifications list">
        {items.map((n) => {
          const room = client.getRoom(n.room_id);
          const sender = n.event.sender ?? "";
          const who = room?.getMember(sender)?.name ?? sender;
          const body = typeof n.event.content?.body === "string" ? withoutReplyFallback(n.event.content.body) : "";
          return (
            <li key={n.event.event_id} class={n.read ? "read" : "unread"}>
              <button type="button" class="notif-item" onClick={() => props.onOpen(n.room_id, n.event.event_id)}>
                <span class="name">
                  {room?.name ?? n.room_id}
                  {!n.read && <span class="visually-hidden"> (unread)</span>}
                  {isHighlight(n) && <span class="mention"> mention</span>}
                </span>
                <time dateTime={new Date(n.ts).toISOString()}>{formatTime(n.ts)}</time>
                <span class="preview">
                  {who}: {body || (n.event.type === "m.room.encrypted" ? "(encrypted)" : n.event.type)}
                </span>
              </button>
            </li>
          );
        })}
      </ul>
      {next && (
        <button type="button" onClick={() => load(next)} disabled={busy}>
          Older notifications
        </button>
      )}
    </section>
  );
}
