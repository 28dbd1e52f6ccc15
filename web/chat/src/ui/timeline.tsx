/**
 * The room's live timeline as an accessible log: older history loads when scrolled to the top (or with the
 * button), the view sticks to the bottom while new messages arrive, and a focused event (a search result, a
 * quoted message) is paged back to if needed, scrolled into view and marked.
 */
import { Direction, type MatrixClient, type Room } from "matrix-js-sdk";
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { errorText } from "../format.ts";
import { isShown } from "./event-body.tsx";
import { type MessageActions, MessageItems } from "./message.tsx";

/** Pages of history to load looking for a focused event before giving up. */
const FOCUS_PAGES = 10;

export function Timeline(props: { client: MatrixClient; room: Room; actions: MessageActions; focus?: string }) {
  const { client, room, focus } = props;
  const ref = useRef<HTMLOListElement>(null);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState("");
  // Distance from the bottom before a render: kept when history is prepended, zero means "follow new messages".
  const fromBottom = useRef(0);

  const timeline = room.getLiveTimeline();
  const events = timeline.getEvents().filter(isShown);
  const atStart =
    timeline.getPaginationToken(Direction.Backward) === null ||
    timeline.getEvents().some((e) => e.getType() === "m.room.create");

  useLayoutEffect(() => {
    const el = ref.current;
    if (el && !focus) el.scrollTop = el.scrollHeight - el.clientHeight - fromBottom.current;
  });

  // Page back until the focused event is loaded, then bring it into view.
  useEffect(() => {
    if (!focus) return;
    let cancelled = false;
    (async () => {
      for (
        let i = 0;
        i < FOCUS_PAGES &&
        !room
          .getLiveTimeline()
          .getEvents()
          .some((e) => e.getId() === focus);
        i++
      ) {
        if (room.getLiveTimeline().getPaginationToken(Direction.Backward) === null) break;
        await client.scrollback(room, 50).catch(() => {});
        if (cancelled) return;
      }
      const el = ref.current?.querySelector(`[data-event-id="${CSS.escape(focus)}"]`);
      if (el) el.scrollIntoView({ block: "center" });
      else setError("That message is not in this room's loaded history.");
    })();
    return () => {
      cancelled = true;
    };
  }, [focus]);

  const loadOlder = async () => {
    if (loading || atStart) return;
    setLoading(true);
    setError("");
    try {
      await client.scrollback(room, 30);
    } catch (e) {
      setError(errorText(e));
    } finally {
      setLoading(false);
    }
  };

  const onScroll = () => {
    const el = ref.current!;
    fromBottom.current = el.scrollHeight - el.clientHeight - el.scrollTop;
    if (el.scrollTop < 80) void loadOlder();
  };

  return (
    // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrollable region must be focusable to scroll by keyboard.
    <ol class="timeline" ref={ref} role="log" aria-label={`Messages in ${room.name}`} tabIndex={0} onScroll={onScroll}>
      <li class="history">
        {atStart ? (
          <span>This is the start of the room.</span>
        ) : (
          <button type="button" class="quiet" onClick={loadOlder} disabled={loading}>
            {loading ? "Loading older messages…" : "Load older messages"}
          </button>
        )}
        {error && (
          <span class="error" role="alert">
            {error}
          </span>
        )}
      </li>
      <MessageItems client={client} room={room} events={events} actions={props.actions} focus={focus} />
    </ol>
  );
}
