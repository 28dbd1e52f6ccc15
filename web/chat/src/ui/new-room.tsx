/** A modal dialog (native <dialog>: focus trap, Escape) to create a room or join one by ID or alias. */
import { type MatrixClient, Preset, Visibility } from "matrix-js-sdk";
import { useEffect, useRef, useState } from "preact/hooks";
import { errorText } from "../format.ts";

const MEGOLM = "m.megolm.v1.aes-sha2";

export function NewRoomDialog(props: {
  client: MatrixClient;
  encryption: boolean;
  onClose: (roomId?: string) => void;
}) {
  const { client } = props;
  const ref = useRef<HTMLDialogElement>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");

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
        initial_state: encrypted ? [{ type: "m.room.encryption", state_key: "", content: { algorithm: MEGOLM } }] : [],
      })
      .then((r) => r.room_id);
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
