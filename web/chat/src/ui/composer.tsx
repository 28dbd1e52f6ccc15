/**
 * Message box: Enter sends, Shift+Enter adds a line; a file button uploads and sends files and images.
 * Typing notifications go out while typing (renewed every few seconds) and stop on send or when emptied.
 */
import type { MatrixClient, Room } from "matrix-js-sdk";
import { useRef, useState } from "preact/hooks";
import { errorText } from "../format.ts";
import { sendFile } from "../media.ts";
import { PaperclipIcon } from "./icons.tsx";

const TYPING_MS = 10_000;

export function Composer({ client, room }: { client: MatrixClient; room: Room }) {
  const input = useRef<HTMLTextAreaElement>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const typingSince = useRef(0);
  const [status, setStatus] = useState("");
  const [error, setError] = useState("");

  const setTyping = (on: boolean) => {
    const now = Date.now();
    if (on && now - typingSince.current < TYPING_MS / 2) return;
    if (!on && typingSince.current === 0) return;
    typingSince.current = on ? now : 0;
    client.sendTyping(room.roomId, on, TYPING_MS).catch(() => {});
  };

  const send = async () => {
    const el = input.current!;
    const text = el.value.trim();
    if (!text) return;
    el.value = "";
    setTyping(false);
    setError("");
    try {
      await client.sendTextMessage(room.roomId, text);
    } catch (e) {
      el.value = text;
      setError(`Not sent: ${errorText(e)}`);
    }
  };

  const upload = async () => {
    const files = [...(fileInput.current?.files ?? [])];
    if (fileInput.current) fileInput.current.value = "";
    setError("");
    for (const f of files) {
      setStatus(`Uploading ${f.name}…`);
      try {
        await sendFile(client, room.roomId, f);
        setStatus(`Sent ${f.name}.`);
      } catch (e) {
        setStatus("");
        setError(`Upload of ${f.name} failed: ${errorText(e)}`);
      }
    }
  };

  return (
    <form
      class="composer"
      aria-label="Send a message"
      onSubmit={(e) => {
        e.preventDefault();
        void send();
      }}
    >
      <input ref={fileInput} id="composer-file" type="file" multiple class="visually-hidden" onChange={upload} />
      <label for="composer-file" class="attach" title="Attach files">
        <PaperclipIcon />
        <span class="visually-hidden">Attach files</span>
      </label>
      <label for="composer-input" class="visually-hidden">
        Message
      </label>
      <textarea
        ref={input}
        id="composer-input"
        rows={1}
        placeholder={`Message ${room.name}`}
        onInput={(e) => setTyping((e.currentTarget as HTMLTextAreaElement).value.length > 0)}
        onBlur={() => setTyping(false)}
        onKeyDown={(e) => {
          if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            void send();
          }
        }}
      />
      <button type="submit" class="primary">
        Send
      </button>
      <p class="composer-status" role="status">
        {status}
      </p>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}
