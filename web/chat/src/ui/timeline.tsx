/**
 * The room's live timeline as an accessible log: older history loads when scrolled to the top (or with the
 * button), the view sticks to the bottom while new messages arrive, and read receipts show under messages.
 */
import { Direction, type MatrixClient, type MatrixEvent, type Room } from "matrix-js-sdk";
import { useLayoutEffect, useRef, useState } from "preact/hooks";
import { errorText, formatTime } from "../format.ts";
import { EventBody, isShown } from "./event-body.tsx";

export function Timeline({ client, room }: { client: MatrixClient; room: Room }) {
  const ref = useRef<HTMLOListElement>(null);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState("");
  // Distance from the bottom before a render: kept when history is prepended, zero means "follow new messages".
  const fromBottom = useRef(0);
  const me = client.getUserId();

  const timeline = room.getLiveTimeline();
  const events = timeline.getEvents().filter(isShown);
  const atStart =
    timeline.getPaginationToken(Direction.Backward) === null ||
    timeline.getEvents().some((e) => e.getType() === "m.room.create");

  useLayoutEffect(() => {
    const el = ref.current;
    if (el) el.scrollTop = el.scrollHeight - el.clientHeight - fromBottom.current;
  });

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

  let prev: MatrixEvent | undefined;
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
      {events.map((e) => {
        const sameSender =
          prev?.getSender() === e.getSender() &&
          prev?.getType() === "m.room.message" &&
          e.getTs() - prev.getTs() < 5 * 60_000;
        prev = e;
        const isMessage = e.getType() === "m.room.message" || e.getType() === "m.room.encrypted";
        const readers = e.getId()?.startsWith("$")
          ? room.getUsersReadUpTo(e).filter((u) => u !== me && u !== e.getSender())
          : [];
        return (
          <li
            key={e.getId() ?? e.getTxnId()}
            class={`${isMessage ? "msg" : "notice"}${e.getSender() === me ? " mine" : ""}${e.status ? " pending" : ""}`}
          >
            {isMessage && !sameSender && (
              <div class="meta">
                <span class="sender">{e.sender?.name ?? e.getSender()}</span>{" "}
                <time dateTime={new Date(e.getTs()).toISOString()}>{formatTime(e.getTs())}</time>
              </div>
            )}
            <EventBody client={client} event={e} />
            {e.status && <span class="status">sending…</span>}
            {readers.length > 0 && (
              <div class="receipts">Seen by {readers.map((u) => room.getMember(u)?.name ?? u).join(", ")}</div>
            )}
          </li>
        );
      })}
    </ol>
  );
}
