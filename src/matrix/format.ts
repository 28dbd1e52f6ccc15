/** PDU -> ClientEvent (spec: "Room Event Format" / ClientEvent). */
import { redactEvent } from "./events/redaction.ts";
import type { ClientEvent, ClientUnsigned, JsonObject, Pdu } from "./events/types.ts";
import { bundledAggregations } from "./service/relations.ts";
import type { Requester } from "./service/requester.ts";
import type { Store, StoredEvent } from "./store/types.ts";

export async function formatClientEvents(
  store: Store,
  roomVersion: (roomId: string) => Promise<string>,
  evs: StoredEvent[],
  forUser: Requester | null,
  now = Date.now(),
  /** Add unsigned["m.relations"] (bundled aggregations); off for the events inside them. */
  bundle = true,
): Promise<ClientEvent[]> {
  const redactionIds = evs.flatMap((e) => (e.redactedBy ? [e.redactedBy] : []));
  // State events carry what they replaced (clients show "changed their name" rather than "joined").
  const stateStreams = evs.flatMap((e) => (e.stateKey !== null ? [e.stream] : []));
  // Both lookups at once: `evs` may span many rooms (/sync formats all of them in one call).
  const [redacting, replaced, relations] = await Promise.all([
    redactionIds.length ? store.events.getEvents(redactionIds) : [],
    stateStreams.length ? store.events.getReplacedState(stateStreams) : new Map<number, StoredEvent>(),
    bundle && evs.length
      ? bundledAggregations(store, evs, forUser?.userId ?? null, (more) =>
          formatClientEvents(store, roomVersion, more, forUser, now, false),
        )
      : new Map<string, JsonObject>(),
  ]);
  const redactions = new Map(redacting.map((r) => [r.eventId, r]));
  const out: ClientEvent[] = [];
  for (const ev of evs) {
    let pdu = ev.pdu;
    const unsigned: ClientUnsigned = { age: Math.max(0, now - ev.originServerTs) };
    if (ev.redactedBy) {
      pdu = redactEvent(pdu, await roomVersion(ev.roomId));
      const r = redactions.get(ev.redactedBy);
      if (r) unsigned.redacted_because = toClient(r, r.pdu, { age: Math.max(0, now - r.originServerTs) });
    }
    const prev = replaced.get(ev.stream);
    if (prev) {
      unsigned.replaces_state = prev.eventId;
      unsigned.prev_sender = prev.sender;
      unsigned.prev_content =
        (prev.redactedBy ? redactEvent(prev.pdu, await roomVersion(prev.roomId)) : prev.pdu).content ?? {};
    }
    if (forUser && ev.txnId && ev.sender === forUser.userId && ev.txnDeviceId === forUser.deviceId) {
      unsigned.transaction_id = ev.txnId;
    }
    const rel = relations.get(ev.eventId);
    if (rel) unsigned["m.relations"] = rel;
    out.push(toClient(ev, pdu, unsigned));
  }
  return out;
}

function toClient(ev: StoredEvent, pdu: Partial<Pdu>, unsigned: ClientUnsigned): ClientEvent {
  const c: ClientEvent = {
    event_id: ev.eventId,
    room_id: ev.roomId,
    sender: ev.sender,
    type: ev.type,
    content: pdu.content ?? {},
    origin_server_ts: ev.originServerTs,
    unsigned,
  };
  if (ev.stateKey !== null) c.state_key = ev.stateKey;
  // Room versions < 11 carry `redacts` at the top level; clients of v11 rooms read content.redacts, but
  // matrix-js-sdk and others still look at the top-level key, so give both.
  if (ev.type === "m.room.redaction") {
    // A string: we built or auth-checked every stored redaction (redactsOf).
    const target = (pdu.redacts ?? pdu.content?.redacts) as string | undefined;
    if (target) c.redacts = target;
  }
  return c;
}
