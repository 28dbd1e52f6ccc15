/**
 * Message box: Enter sends, Shift+Enter adds a line; a file button uploads and sends files and images.
 * It can be replying to a message or editing one of mine (a banner says which; Escape cancels), and it can
 * belong to a thread (everything sent goes into that thread). Up in an empty box edits my last message. Typing notifications go out while typing in
 * the room's composer (renewed every few seconds) and stop on send or when emptied.
 */
import type { MatrixClient, MatrixEvent, Room } from "matrix-js-sdk";
import { useEffect, useRef, useState } from "preact/hooks";
import { errorText } from "../format.ts";
import { sendFile } from "../media.ts";
import { isEdit, messageText, sendEdit, sendText } from "../relations.ts";
import { PaperclipIcon } from "./icons.tsx";

const TYPING_MS = 10_000;

/** Replying to or editing a message. */
export type ComposerMode = { kind: "reply" | "edit"; event: MatrixEvent } | null;

/** My newest text message in the room's timeline or the thread, the one Up arrow edits. */
function lastEditable(room: Room, me: string, threadId?: string): MatrixEvent | undefined {
  const events = threadId ? (room.getThread(threadId)?.events ?? []) : room.getLiveTimeline().getEvents();
  return events.findLast(
    (e) =>
      e.getSender() === me &&
      e.getType() === "m.room.message" &&
      e.getContent().msgtype === "m.text" &&
      !isEdit(e) &&
      !e.isRedacted() &&
      !!e.getId()?.startsWith("$"),
  );
}

export function Composer(props: {
  client: MatrixClient;
  room: Room;
  /** Post into this thread (its root event ID); the room's own composer has none. */
  threadId?: string;
  mode?: ComposerMode;
  /** Enter or leave a mode (Escape and sending leave it; Up in an empty box edits my last message). */
  onMode?: (mode: ComposerMode) => void;
  onSent?: () => void;
}) {
  const { client, room, threadId, mode } = props;
  const input = useRef<HTMLTextAreaElement>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const typingSince = useRef(0);
  const [status, setStatus] = useState("");
  const [error, setError] = useState("");
  const ids = threadId
    ? { text: "thread-input", file: "thread-file" }
    : { text: "composer-input", file: "composer-file" };

  // A thread's box takes focus when the thread opens (from "Reply in thread" one means to write there).
  useEffect(() => {
    if (threadId) input.current?.focus();
  }, [threadId]);

  // Entering a mode moves focus to the box; editing starts from the message's current text.
  useEffect(() => {
    const el = input.current;
    if (!el || !mode) return;
    if (mode.kind === "edit") el.value = messageText(mode.event);
    el.focus();
  }, [mode]);

  const setTyping = (on: boolean) => {
    if (threadId) return;
    const now = Date.now();
    if (on && now - typingSince.current < TYPING_MS / 2) return;
    if (!on && typingSince.current === 0) return;
    typingSince.current = on ? now : 0;
    client.sendTyping(room.roomId, on, TYPING_MS).catch(() => {});
  };

  const cancel = () => {
    if (mode?.kind === "edit" && input.current) input.current.value = "";
    props.onMode?.(null);
  };

  const send = async () => {
    const el = input.current!;
    const text = el.value.trim();
    if (!text) return;
    el.value = "";
    setTyping(false);
    setError("");
    props.onMode?.(null);
    try {
      if (mode?.kind === "edit") await sendEdit(client, room, mode.event, text);
      else await sendText(client, room, text, { replyTo: mode?.event, threadId });
      props.onSent?.();
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
        await sendFile(client, room.roomId, f, threadId);
        setStatus(`Sent ${f.name}.`);
      } catch (e) {
        setStatus("");
        setError(`Upload of ${f.name} failed: ${errorText(e)}`);
      }
    }
  };

  const who = mode ? (mode.event.sender?.name ?? mode.event.getSender()) : "";
  return (
    <form
      class="composer"
      aria-label={threadId ? "Reply in this thread" : "Send a message"}
      onSubmit={(e) => {
        e.preventDefault();
        void send();
      }}
    >
      {mode && (
        <p class="mode" role="status">
          <span>
            {mode.kind === "edit" ? "Editing your message" : `Replying to ${who}: ${messageText(mode.event)}`}
          </span>
          <button type="button" class="quiet" onClick={cancel}>
            Cancel {mode.kind === "edit" ? "edit" : "reply"}
          </button>
        </p>
      )}
      <input ref={fileInput} id={ids.file} type="file" multiple class="visually-hidden" onChange={upload} />
      <label for={ids.file} class="attach" title="Attach files">
        <PaperclipIcon />
        <span class="visually-hidden">Attach files{threadId ? " to the thread" : ""}</span>
      </label>
      <label for={ids.text} class="visually-hidden">
        {threadId ? "Thread reply" : "Message"}
      </label>
      <textarea
        ref={input}
        id={ids.text}
        rows={1}
        placeholder={threadId ? "Reply in thread" : `Message ${room.name}`}
        onInput={(e) => setTyping((e.currentTarget as HTMLTextAreaElement).value.length > 0)}
        onBlur={() => setTyping(false)}
        onKeyDown={(e) => {
          if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            void send();
          } else if (e.key === "Escape" && mode) {
            e.preventDefault();
            cancel();
          } else if (e.key === "ArrowUp" && !mode && !e.currentTarget.value) {
            const last = lastEditable(room, client.getUserId()!, threadId);
            if (last) {
              e.preventDefault();
              props.onMode?.({ kind: "edit", event: last });
            }
          }
        }}
      />
      <button type="submit" class="primary">
        {mode?.kind === "edit" ? "Save" : "Send"}
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
