/**
 * timestamp_to_event (spec room_event_by_timestamp.yaml): the event closest to a time in one direction among the
 * events the reader may see (history visibility: one store read per visible range, each in the
 * events(room_id, origin_server_ts) index).
 */
import type { Homeserver } from "../hs.ts";
import type { StoredEvent } from "../store/types.ts";
import type { RoomVisibility } from "./visibility.ts";

/** The first visible event at or after `ts` (dir f) or the last at or before it (dir b); null if none. */
export async function visibleEventNear(
  hs: Homeserver,
  v: RoomVisibility,
  ts: number,
  dir: "f" | "b",
): Promise<StoredEvent | null> {
  let best: StoredEvent | null = null;
  for (const r of v.ranges) {
    const e = await hs.store.events.getEventNearTimestamp({ roomId: v.roomId, ts, dir, lo: r.lo, hi: r.hi });
    if (!e) continue;
    const closer =
      !best ||
      (dir === "f"
        ? e.originServerTs < best.originServerTs || (e.originServerTs === best.originServerTs && e.stream < best.stream)
        : e.originServerTs > best.originServerTs ||
          (e.originServerTs === best.originServerTs && e.stream > best.stream));
    if (closer) best = e;
  }
  return best;
}
