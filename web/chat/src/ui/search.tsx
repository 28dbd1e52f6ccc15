/**
 * Message search (spec: /search, room_events): in this room or in all rooms, newest first, the matching words
 * marked, one message of context either side, more results on demand; choosing a result opens its room at it.
 */
import type { ISearchResults, MatrixClient, MatrixEvent } from "matrix-js-sdk";
import { useEffect, useRef, useState } from "preact/hooks";
import { errorText, formatTime } from "../format.ts";
import { messageText } from "../relations.ts";

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Text with every highlight word wrapped in <mark> (case-insensitive, as the server matched). */
export function Highlighted({ text, words }: { text: string; words: string[] }) {
  const ws = words.filter((w) => w.trim().length > 0);
  if (ws.length === 0) return <>{text}</>;
  const re = new RegExp(`(${ws.map(escapeRe).join("|")})`, "gi");
  return <>{text.split(re).map((part, i) => (i % 2 === 1 ? <mark key={i}>{part}</mark> : part))}</>;
}

export function SearchPanel(props: {
  client: MatrixClient;
  roomId: string;
  /** Open a hit: its room, the event, and the thread it belongs to (if any). */
  onOpen: (roomId: string, eventId: string, threadId?: string) => void;
}) {
  const { client } = props;
  const [results, setResults] = useState<ISearchResults | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const [allRooms, setAllRooms] = useState(false);
  const term = useRef("");
  const field = useRef<HTMLInputElement>(null);
  // The panel opens from the Search button: focus moves into it, as a disclosure should.
  useEffect(() => field.current?.focus(), []);

  const run = async (more: boolean) => {
    setBusy(true);
    setError("");
    try {
      if (more && results) setResults({ ...(await client.backPaginateRoomEventsSearch(results)) });
      else
        setResults(
          await client.searchRoomEvents({
            term: term.current,
            filter: allRooms ? undefined : { rooms: [props.roomId] },
          }),
        );
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  };

  const words = results ? [...results.highlights, ...term.current.split(/\s+/)] : [];
  return (
    <>
      <h3 id="search-h">Search messages</h3>
      <form
        class="search-form"
        aria-labelledby="search-h"
        onSubmit={(e) => {
          e.preventDefault();
          term.current = String(new FormData(e.currentTarget as HTMLFormElement).get("q") ?? "").trim();
          if (term.current) void run(false);
        }}
      >
        <label for="search-q" class="visually-hidden">
          Search for
        </label>
        <div class="row">
          <input id="search-q" name="q" type="search" required placeholder="Words to find" ref={field} />
          <button type="submit" disabled={busy}>
            Search
          </button>
        </div>
        <label class="check">
          <input type="checkbox" checked={allRooms} onChange={(e) => setAllRooms(e.currentTarget.checked)} /> All rooms
        </label>
      </form>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <p role="status" class="search-count">
        {busy ? "Searching…" : results ? `${results.count ?? results.results.length} result(s)` : ""}
      </p>
      {results && (
        <ol class="search-results" aria-label="Search results">
          {results.results.map((r) => {
            const ev = r.context.getEvent();
            const roomName = client.getRoom(ev.getRoomId())?.name ?? ev.getRoomId();
            return (
              <li key={ev.getId()}>
                {allRooms && <div class="room-name">{roomName}</div>}
                {context(r.context.getTimeline().slice(0, r.context.getOurEventIndex()))}
                <div class="hit">
                  <span class="sender">{ev.sender?.name ?? ev.getSender()}</span>{" "}
                  <time dateTime={new Date(ev.getTs()).toISOString()}>{formatTime(ev.getTs())}</time>
                  <p class="body">
                    <Highlighted text={messageText(ev)} words={words} />
                  </p>
                </div>
                {context(r.context.getTimeline().slice(r.context.getOurEventIndex() + 1))}
                <button
                  type="button"
                  class="quiet"
                  onClick={() => props.onOpen(ev.getRoomId()!, ev.getId()!, ev.threadRootId)}
                >
                  Show in {roomName}
                </button>
              </li>
            );
          })}
        </ol>
      )}
      {results?.next_batch && (
        <button type="button" onClick={() => run(true)} disabled={busy}>
          More results
        </button>
      )}
    </>
  );
}

/** The messages around a hit, muted, so a result can be understood without opening the room. */
function context(events: MatrixEvent[]) {
  return events
    .filter((c) => c.getType() === "m.room.message")
    .map((c) => (
      <p key={c.getId()} class="context">
        {c.sender?.name ?? c.getSender()}: {messageText(c)}
      </p>
    ));
}
