/**
 * A modal dialog (native <dialog>: focus trap, Escape) to create a room, join one by ID or alias, or start a
 * direct chat with someone found in the user directory.
 */
import { EventType, type MatrixClient, Preset, Visibility } from "matrix-js-sdk";
import { useEffect, useRef, useState } from "preact/hooks";
import { errorText } from "../format.ts";
import { UserSearch } from "./user-search.tsx";

const MEGOLM = "m.megolm.v1.aes-sha2";
/** Initial state turning on Megolm encryption, or none. */
const encryptionState = (on: boolean) =>
  on ? [{ type: "m.room.encryption", state_key: "", content: { algorithm: MEGOLM } }] : [];

export function NewRoomDialog(props: {
  client: MatrixClient;
  encryption: boolean;
  onClose: (roomId?: string) => void;
}) {
  const { client } = props;
  const ref = useRef<HTMLDialogElement>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const [dmUser, setDmUser] = useState("");

  useEffect(() => {
    ref.current?.showModal();
  }, []);

  const run = async (e: Event, fn: (f: FormData) => Promise<string>) => {
    e.preventDefault();
    setBusy(true);
    setError("");
    try {
      const id = await fn(new FormData(e.currentTarget as HTMLFormElement));
      ref.current?.close();
      props.onClose(id);
    } catch (err) {
      setError(errorText(err));
      setBusy(false);
    }
  };

  const create = (f: FormData) => {
    const invite = String(f.get("invite") ?? "")
      .split(/[\s,]+/)
      .filter(Boolean);
    const isPublic = f.get("public") === "on";
    const encrypted = f.get("encrypted") === "on";
    return client
      .createRoom({
        name: String(f.get("name")).trim(),
        topic: String(f.get("topic") ?? "").trim() || undefined,
        invite,
        preset: isPublic ? Preset.PublicChat : Preset.PrivateChat,
        visibility: isPublic ? Visibility.Public : Visibility.Private,
        initial_state: encryptionState(encrypted),
      })
      .then((r) => r.room_id);
  };
  // A direct chat: a trusted private room marked is_direct, and listed in my m.direct account data.
  const direct = async () => {
    const userId = dmUser.trim();
    const { room_id } = await client.createRoom({
      is_direct: true,
      invite: [userId],
      preset: Preset.TrustedPrivateChat,
      initial_state: encryptionState(props.encryption),
    });
    const map = { ...(client.getAccountData(EventType.Direct)?.getContent() ?? {}) } as Record<string, string[]>;
    map[userId] = [...(map[userId] ?? []), room_id];
    await client.setAccountData(EventType.Direct, map);
    return room_id;
  };
  const join = (f: FormData) => client.joinRoom(String(f.get("room")).trim()).then((r) => r.roomId);

  return (
    <dialog ref={ref} class="card dialog" aria-labelledby="new-room-h" onClose={() => props.onClose()}>
      <h2 id="new-room-h">New room</h2>
      <form onSubmit={(e) => run(e, create)} aria-label="Create a room">
        <label for="room-name">Room name</label>
        <input id="room-name" name="name" required autoFocus />
        <label for="room-topic">Topic (optional)</label>
        <input id="room-topic" name="topic" />
        <label for="room-invite">Invite (user IDs, comma separated)</label>
        <input id="room-invite" name="invite" placeholder="@bob:localhost" />
        <label class="check">
          <input type="checkbox" name="encrypted" defaultChecked={props.encryption} disabled={!props.encryption} />
          End-to-end encrypted{props.encryption ? "" : " (not available on this server)"}
        </label>
        <label class="check">
          <input type="checkbox" name="public" /> Public (listed in the directory, anyone can join)
        </label>
        <button type="submit" class="primary" disabled={busy}>
          Create room
        </button>
      </form>
      <form onSubmit={(e) => run(e, join)} aria-label="Join a room" class="join">
        <label for="join-room">Or join a room by ID or alias</label>
        <div class="row">
          <input id="join-room" name="room" required placeholder="#general:localhost" />
          <button type="submit" disabled={busy}>
            Join
          </button>
        </div>
      </form>
      <form onSubmit={(e) => run(e, direct)} aria-label="Start a direct chat" class="join">
        <UserSearch
          client={client}
          id="dm-user"
          label="Or start a direct chat with"
          value={dmUser}
          onInput={setDmUser}
        />
        <button type="submit" disabled={busy || !dmUser.trim()}>
          Start chat
        </button>
      </form>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <button
        type="button"
        class="quiet close"
        onClick={() => {
          ref.current?.close();
        }}
      >
        Cancel
      </button>
    </dialog>
  );
}
