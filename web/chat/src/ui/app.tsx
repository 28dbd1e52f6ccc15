/** Top level: login, then the two-pane chat (room list + room); one pane at a time on a phone. */
import { ClientEvent, type MatrixClient } from "matrix-js-sdk";
import { useEffect, useState } from "preact/hooks";
import { errorText } from "../format.ts";
import { useClientEvents } from "../hooks.ts";
import { forgetBlobUrls } from "../media.ts";
import { watchNotifications } from "../notify.ts";
import { forgetSession, logout, type PageConfig, type StoredSession, startSession, storedSession } from "../session.ts";
import { Login } from "./login.tsx";
import { NewRoomDialog } from "./new-room.tsx";
import { NotificationsPanel } from "./notifications.tsx";
import { RoomList } from "./room-list.tsx";
import { RoomView } from "./room-view.tsx";

interface Running {
  client: MatrixClient;
  encryption: boolean;
}

export function App({ config }: { config: PageConfig }) {
  const [session, setSession] = useState<StoredSession | null>(storedSession);
  const [running, setRunning] = useState<Running | null>(null);
  const [error, setError] = useState("");

  useEffect(() => {
    if (!session) return;
    let cancelled = false;
    startSession(session).then(
      (r) => (cancelled ? r.client.stopClient() : setRunning(r)),
      (e) => {
        // A revoked or expired token: back to the login form.
        forgetSession();
        setSession(null);
        setError(errorText(e));
      },
    );
    return () => {
      cancelled = true;
    };
  }, [session]);

  if (!session)
    return (
      <>
        {error && (
          <p class="banner error" role="alert">
            {error}
          </p>
        )}
        <Login config={config} onLogin={setSession} />
      </>
    );
  if (!running)
    return (
      <p class="boot" role="status">
        Connecting to {session.baseUrl}…
      </p>
    );
  const signOut = async () => {
    await logout(running.client);
    forgetBlobUrls();
    setRunning(null);
    setSession(null);
  };
  return <Chat client={running.client} encryption={running.encryption} onSignOut={signOut} />;
}

const CHAT_EVENTS = [ClientEvent.Room, ClientEvent.DeleteRoom];

function Chat({ client, encryption, onSignOut }: { client: MatrixClient; encryption: boolean; onSignOut: () => void }) {
  // A room just created or joined may reach this client's sync after the call returns: render when it arrives.
  useClientEvents(client, CHAT_EVENTS);
  const [roomId, setRoomId] = useState<string | null>(null);
  // An event to bring into view when the room opens (a search result, a notification).
  const [focus, setFocus] = useState<string | undefined>();
  const [creating, setCreating] = useState(false);
  const [showNotifs, setShowNotifs] = useState(false);
  const room = roomId ? client.getRoom(roomId) : null;
  const open = (id: string | null, eventId?: string) => {
    setRoomId(id);
    setFocus(eventId);
  };
  useEffect(() => watchNotifications(client, (id) => open(id)), [client]);
  return (
    <div class="shell" data-view={room ? "room" : "list"}>
      <a class="skip" href="#composer-input">
        Skip to message box
      </a>
      <aside class="sidebar" aria-label="Rooms">
        <header class="bar">
          <span class="me" title={client.getUserId() ?? ""}>
            {client.getUserId()}
          </span>
          <button type="button" onClick={() => setCreating(true)}>
            New room
          </button>
          <button type="button" class="quiet" onClick={onSignOut}>
            Sign out
          </button>
        </header>
        <div class="bar sub">
          <button type="button" class="quiet" aria-expanded={showNotifs} onClick={() => setShowNotifs((v) => !v)}>
            {showNotifs ? "Back to rooms" : "Notifications"}
          </button>
        </div>
        {showNotifs ? (
          <NotificationsPanel
            client={client}
            onOpen={(id, eventId) => {
              setShowNotifs(false);
              open(id, eventId);
            }}
          />
        ) : (
          <RoomList client={client} selected={roomId} onSelect={(id) => open(id)} />
        )}
      </aside>
      <main class="room" aria-label={room ? `Room ${room.name}` : "No room selected"}>
        {room ? (
          <RoomView
            key={room.roomId}
            client={client}
            room={room}
            focus={focus}
            onBack={() => open(null)}
            onOpen={open}
          />
        ) : (
          <p class="empty">Pick a room, or start one with “New room”.</p>
        )}
      </main>
      {creating && (
        <NewRoomDialog
          client={client}
          encryption={encryption}
          onClose={(id) => {
            setCreating(false);
            if (id) open(id);
          }}
        />
      )}
    </div>
  );
}
