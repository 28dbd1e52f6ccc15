/**
 * Room service: builds, authorises, signs and persists room events (room versions 10 and 11), and the
 * membership and createRoom operations built on it. Sends to one room are serialised by a per-room promise
 * chain; the stream writer then group-commits events across rooms, in stream order.
 */
import { AmiError } from "../../core/errors.ts";
import type { Writer } from "../cluster/routing.ts";
import { type AuthEvent, authTypesFor, checkAuth, mayRedact, stateKey } from "../events/auth.ts";
import { signEvent } from "../events/event-signing.ts";
import { eventIdFor } from "../events/hashing.ts";
import { isValidEventId, isValidRoomId, parseUserId, roomIdOfCreateEvent, serverNameOf } from "../events/ids.ts";
import { roomVersionRules } from "../events/room-versions.ts";
import type { EventContent, JsonObject, UnsignedPdu } from "../events/types.ts";
import { membershipChanged } from "../federation/device-lists.ts";
import { sendPduOut } from "../federation/edus-out.ts";
import { inviteRemote } from "../federation/membership.ts";
import { remoteProfile } from "../federation/remote.ts";
import type { Homeserver, RoomService, SendEventInput } from "../hs.ts";
import { planEventState } from "../store/dag.ts";
import type { EventStateWrite, NewEvent } from "../store/types.ts";
import { MAX_PREV_EVENTS, noStateResolver, resolveStateBefore, type StateResolver } from "./event-state.ts";
import { checkNewRelation } from "./relations.ts";
import { localMemberContent } from "./restricted-join.ts";
import { createRoom } from "./room-create.ts";
import { AUTH_TYPES, HeadCache, loadHead, type RoomHead } from "./room-head.ts";

/** Spec "Size limits": a PDU is at most 65536 bytes of canonical JSON; type and state_key at most 255 bytes. */
const MAX_PDU_BYTES = 65_536;
const MAX_KEY_BYTES = 255;

/**
 * Types that only mean something as room state (the spec's m.room.* state events). Sent as a message event one
 * would sit in the timeline looking like a state change that never happened (an m.room.create mid-room, a
 * power_levels "change" clients might display), so they are refused unless they carry a state key.
 */
const STATE_ONLY_TYPES: ReadonlySet<string> = new Set([
  "m.room.create",
  "m.room.member",
  "m.room.power_levels",
  "m.room.join_rules",
  "m.room.history_visibility",
  "m.room.guest_access",
  "m.room.third_party_invite",
  "m.room.server_acl",
  "m.room.encryption",
  "m.room.tombstone",
  "m.room.canonical_alias",
  "m.room.name",
  "m.room.topic",
  "m.room.avatar",
  "m.room.pinned_events",
]);

type Membership = "join" | "leave" | "invite" | "ban" | "knock";

/** A local event built, signed and authorised on a head, not yet persisted (Rooms.#build). */
interface Built {
  input: SendEventInput;
  version: string;
  pdu: UnsignedPdu;
  signed: ReturnType<typeof signEvent>;
  eventId: string;
  content: EventContent;
  state: EventStateWrite;
  authInput: Parameters<typeof checkAuth>[0];
}

export class Rooms implements RoomService {
  readonly #hs: Homeserver;
  // 2,000 rooms, and at most 200,000 auth events (mostly member events, a few hundred bytes each) over all of them.
  readonly #heads = new HeadCache(2000, 200_000);
  readonly #locks = new Map<string, Promise<unknown>>();
  /** Merges forked room states before a local send (federation sets state resolution v2; see event-state.ts). */
  stateResolver: StateResolver = noStateResolver;

  /**
   * Several workers (cluster/): each room's highest stream position this process knows its head is current at.
   * Under the room's cluster lock, a different stored maximum means another process wrote it: re-read the head.
   */
  readonly #seen = new Map<string, number>();

  constructor(hs: Homeserver) {
    this.#hs = hs;
    hs.cluster.router?.serve((input) => {
      validateInput(input);
      return this.#sendHere(input);
    });
    if (hs.cluster.workers > 1)
      hs.stream.onWritten((pos, ev) => {
        if (!ev) return;
        if (this.#seen.size >= 50_000) this.#seen.clear();
        if ((this.#seen.get(ev.roomId) ?? 0) < pos) this.#seen.set(ev.roomId, pos);
      });
  }

  /**
   * Run `fn` after every earlier call for `roomId` settled, holding the room's PostgreSQL lock (several workers:
   * one process at a time persists a room's events, on a head that is current).
   */
  #withLock<T>(roomId: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(roomId) ?? Promise.resolve();
    const locked = () =>
      this.#hs.cluster.withRoom(roomId, (latest) => {
        if (latest !== null && this.#seen.get(roomId) !== latest) {
          this.#heads.delete(roomId);
          this.#seen.set(roomId, latest);
        }
        return fn();
      });
    const run = prev.then(locked, locked);
    const tail = run.then(
      () => {},
      () => {},
    );
    this.#locks.set(roomId, tail);
    void tail.then(() => {
      if (this.#locks.get(roomId) === tail) this.#locks.delete(roomId);
    });
    if (!this.#hs.stream.shared) return run;
    // Several workers: what this process wrote becomes readable once no other writer's older position is pending;
    // the caller waits for that (after the room lock, so the room's next send need not).
    return run.then(async (out) => {
      await this.#hs.stream.visible();
      return out;
    });
  }

  async #head(roomId: string): Promise<RoomHead> {
    let h = this.#heads.get(roomId);
    if (!h) {
      const loaded = await loadHead(this.#hs.store, roomId);
      if (!loaded) throw new AmiError("M_NOT_FOUND", `Unknown room ${roomId}`);
      h = loaded;
      this.#heads.set(roomId, h);
    }
    return h;
  }

  purgeRoom(roomId: string): Promise<number> {
    return this.#withLock(roomId, async () => {
      const n = await this.#hs.store.rooms.purgeRoom(roomId);
      this.#heads.delete(roomId);
      return n;
    });
  }

  /**
   * Federation (federation/pdu-in.ts): run `fn` under the room's send lock with the room's head, and `persist` to
   * write an accepted remote event as a timeline event (notifies as a local send does; the head is re-read from the
   * store afterwards, so its extremities and auth state follow the DAG).
   */
  withRemote<T>(
    roomId: string,
    fn: (head: RoomHead, persist: (event: Omit<NewEvent, "stream">) => Promise<number>) => Promise<T>,
  ): Promise<T> {
    return this.#withLock(roomId, async () => {
      const head = await this.#head(roomId);
      const persist = async (event: Omit<NewEvent, "stream">): Promise<number> => {
        let stream: number;
        try {
          stream = await this.#hs.stream.persistEvent(event);
        } finally {
          this.#heads.delete(roomId);
        }
        this.#hs.metrics.eventsPersisted++;
        // State-only events notify nobody, except an out-of-band invite of one of our users (push's invite rule).
        const invite = event.type === "m.room.member" && event.pdu.content?.membership === "invite";
        if (!event.stateOnly || invite) this.#hs.push.onEvent({ eventId: event.eventId, stream, pdu: event.pdu });
        if (event.type === "m.room.member" && event.stateKey)
          membershipChanged(this.#hs, roomId, event.stateKey, event.pdu.content?.membership);
        return stream;
      };
      return fn(head, persist);
    });
  }

  reloadHead(roomId: string): Promise<void> {
    return this.#withLock(roomId, async () => this.#heads.delete(roomId));
  }

  async roomVersion(roomId: string): Promise<string> {
    const cached = this.#heads.get(roomId);
    if (cached) return cached.version;
    const room = isValidRoomId(roomId) ? await this.#hs.store.rooms.getRoom(roomId) : null;
    if (!room) throw new AmiError("M_NOT_FOUND", `Unknown room ${roomId}`);
    return room.version;
  }

  /** The auth-relevant current state of a room (create, power levels, join rules, members), from the cache. */
  async authState(roomId: string): Promise<Map<string, AuthEvent>> {
    return this.#withLock(roomId, async () => new Map((await this.#head(roomId)).auth));
  }

  sendEvent(input: SendEventInput): Promise<{ eventId: string; stream: number }> {
    validateInput(input);
    if (this.#isRemoteInvite(input)) return this.#sendRemoteInvite(input);
    const owner = this.#hs.cluster.router?.ownerOf(input.roomId);
    if (owner) return this.#forward(owner, input);
    return this.#sendHere(input);
  }

  /**
   * Several workers (cluster/routing.ts): the room's writer persists it; its position is readable here before the
   * caller hears "sent". Unreachable: persisted here (the room's lock keeps that correct).
   */
  async #forward(owner: Writer, input: SendEventInput): Promise<{ eventId: string; stream: number }> {
    const out = await this.#hs.cluster.router!.forward(owner, input);
    if (!out) return this.#sendHere(input);
    await this.#hs.stream.visible(out.stream);
    return out;
  }

  /** A send persisted by this process (forwarded ones too: a forwarded send is never forwarded again). */
  #sendHere(input: SendEventInput): Promise<{ eventId: string; stream: number }> {
    return this.#withLock(input.roomId, async () => {
      const b = await this.#build(input);
      return "done" in b ? b.done : this.#commit(b, b.signed, await this.#head(input.roomId), true);
    });
  }

  /** An invite of a user of another server (its server must sign it first: federation/membership.ts inviteRemote). */
  #isRemoteInvite(input: SendEventInput): boolean {
    return (
      input.type === "m.room.member" &&
      input.content.membership === "invite" &&
      input.stateKey !== undefined &&
      this.#hs.config.federation.enabled &&
      serverNameOf(input.stateKey) !== this.#hs.serverName
    );
  }

  /**
   * A remote invite: built, signed and authorised under the room's lock, then sent to the invitee's server with
   * the lock released (a slow or hung server must not hold up the room's other sends for up to the request
   * timeout), then, under the lock again, authorised against the room's state as it is now and persisted as the
   * invitee's server signed it. If the room moved on meanwhile, the invite keeps its prev events (the signed event
   * cannot change) and forks the room; the current state is then the extremities' states resolved.
   */
  async #sendRemoteInvite(input: SendEventInput): Promise<{ eventId: string; stream: number }> {
    const b = await this.#withLock(input.roomId, () => this.#build(input));
    if ("done" in b) return b.done;
    const signed = (await inviteRemote(this.#hs, b.signed, b.eventId, b.version)) as typeof b.signed;
    return this.#withLock(input.roomId, async () => {
      const done = await this.#txnDone(input);
      if (done) return done;
      const head = await this.#head(input.roomId);
      const reason = checkAuth(b.authInput, head.auth, head.version);
      if (reason) throw new AmiError("M_FORBIDDEN", reason);
      const onHead =
        head.extremities.length === b.pdu.prev_events.length &&
        head.extremities.every((e, i) => e === b.pdu.prev_events[i]);
      return this.#commit(b, signed, head, onHead);
    });
  }

  /** The event a repeated transaction (same sender, device, txnId) already made, if any. */
  async #txnDone(input: SendEventInput): Promise<{ eventId: string; stream: number } | null> {
    if (!input.txn) return null;
    const { store, stream } = this.#hs;
    const { deviceId, scope, txnId } = input.txn;
    const existing = await store.events.getTxnEvent(input.sender, deviceId, scope, txnId);
    if (!existing) return null;
    return { eventId: existing, stream: (await store.events.getEvent(existing))?.stream ?? stream.current };
  }

  /** Build, sign and authorise a local event on the room's current head (under the room's lock). */
  async #build(input: SendEventInput): Promise<Built | { done: { eventId: string; stream: number } }> {
    const hs = this.#hs;
    const { store } = hs;
    const done = await this.#txnDone(input);
    if (done) return { done };
    const head = await this.#head(input.roomId);
    const rules = roomVersionRules(head.version);
    if (!rules) throw new AmiError("M_UNSUPPORTED_ROOM_VERSION", `Room version ${head.version} is not supported`);
    const prevEvents = head.extremities.slice(0, MAX_PREV_EVENTS);
    let state: EventStateWrite;
    if (head.state) state = { before: head.state.group, beforeChain: head.state.chain };
    else {
      // Forked (only possible over federation): the state before is the prevs' states resolved, and its auth part
      // is what this event is authorised against.
      const resolved = await resolveStateBefore(store, input.roomId, head, prevEvents, this.stateResolver);
      head.auth = resolved.auth;
      this.#heads.set(input.roomId, head);
      state = { before: null, beforeChain: 0, resolved: resolved.entries };
    }

    let content = input.content;
    if (input.type === "m.room.member" && input.stateKey !== undefined)
      content = await localMemberContent(hs, head.auth, input.sender, input.stateKey, content);
    const pdu: UnsignedPdu = {
      room_id: input.roomId,
      sender: input.sender,
      type: input.type,
      content,
      origin_server_ts: input.ts ?? Date.now(),
      depth: head.depth + 1,
      prev_events: prevEvents,
      auth_events: [],
    };
    if (input.stateKey !== undefined) pdu.state_key = input.stateKey;
    // v12: the create event has no room_id; the room ID is its hash (room-create.ts derived it from the same PDU).
    const hashedCreate = rules.roomIdIsCreateHash && input.type === "m.room.create" && input.stateKey === "";
    if (hashedCreate) delete (pdu as Partial<UnsignedPdu>).room_id;
    if (input.type === "m.room.redaction") {
      const target = input.redacts ?? content.redacts;
      if (typeof target !== "string" || !isValidEventId(target))
        throw new AmiError("M_BAD_JSON", "A redaction needs the ID of the event it redacts");
      if (rules.redactsInContent) pdu.content = content = { ...content, redacts: target };
      else pdu.redacts = target;
      await this.#checkRedaction(head, input.roomId, input.sender, target);
    }
    await checkNewRelation(store, input.sender, input.type, content);
    const authFor = { type: input.type, sender: input.sender, state_key: input.stateKey, content };
    for (const [t, k] of authTypesFor(authFor, head.version)) {
      const e = head.auth.get(stateKey(t, k));
      if (e) pdu.auth_events.push(e.event_id);
    }
    const signed = signEvent(pdu, hs.serverName, hs.signingKey, head.version);
    // JSON.stringify is native and as long as the canonical form give or take escapes (same keys, no whitespace).
    if (Buffer.byteLength(JSON.stringify(signed)) > MAX_PDU_BYTES)
      throw new AmiError("M_TOO_LARGE", "Event is too large");
    const eventId = eventIdFor(signed, head.version);
    if (hashedCreate && roomIdOfCreateEvent(eventId) !== input.roomId)
      throw new AmiError("M_UNKNOWN", `The create event ${eventId} does not hash to the room ID ${input.roomId}`);
    const authInput = {
      event_id: eventId,
      type: input.type,
      state_key: input.stateKey,
      sender: input.sender,
      content,
      room_id: input.roomId,
      redacts: pdu.redacts,
      prev_events: pdu.prev_events,
    };
    const reason = checkAuth(authInput, head.auth, head.version);
    if (reason) throw new AmiError("M_FORBIDDEN", reason);
    return { input, version: head.version, pdu, signed, eventId, content, state, authInput };
  }

  /**
   * Persist a built event (under the room's lock) and send it on. `onHead`: the head is still the one it was built
   * on, which then moves to it; otherwise (a remote invite the room moved past) the head is re-read from the store
   * and the forked room's current state resolved.
   */
  async #commit(
    b: Built,
    signed: Built["signed"],
    head: RoomHead,
    onHead: boolean,
  ): Promise<{ eventId: string; stream: number }> {
    const hs = this.#hs;
    const { input, pdu, eventId, content, state } = b;
    const event = {
      eventId,
      roomId: input.roomId,
      type: input.type,
      stateKey: input.stateKey ?? null,
      sender: input.sender,
      originServerTs: pdu.origin_server_ts,
      depth: pdu.depth,
      pdu: signed,
      txn: input.txn ? { userId: input.sender, ...input.txn } : undefined,
      state,
    };
    let stream: number;
    try {
      // Group-committed with whatever other rooms are sending right now (StreamWriter.persistEvent).
      stream = await hs.stream.persistEvent(event);
    } catch (e) {
      // We cannot know what, if anything, was committed: re-read the head next time.
      this.#heads.delete(input.roomId);
      throw e;
    }
    hs.metrics.eventsPersisted++;
    hs.push.onEvent({ eventId, stream, pdu: signed });
    sendPduOut(
      hs,
      input.roomId,
      signed,
      input.type === "m.room.member" ? input.stateKey : undefined,
      undefined,
      stream,
    );
    if (input.type === "m.room.member" && input.stateKey)
      membershipChanged(hs, input.roomId, input.stateKey, content.membership);
    if (!onHead) {
      this.#heads.delete(input.roomId);
      await this.#resolveCurrentState(input.roomId);
      return { eventId, stream };
    }
    head.extremities = [eventId];
    head.depth = pdu.depth;
    const plan = planEventState({ ...event, stream });
    head.state = plan ? { group: plan.after, chain: plan.afterChain } : null;
    if (input.stateKey !== undefined && AUTH_TYPES.has(input.type)) {
      head.auth.set(stateKey(input.type, input.stateKey), {
        event_id: eventId,
        type: input.type,
        state_key: input.stateKey,
        sender: input.sender,
        content,
        room_id: input.roomId,
      });
      // Re-count the head's weight (and keep it cached: it is the room's current head).
      this.#heads.set(input.roomId, head);
    }
    return { eventId, stream };
  }

  /**
   * After a local event that forked the room: persistEvent wrote current_state "latest wins"; the extremities'
   * states resolved (as pdu-in.ts does after a remote event) are written over it.
   */
  async #resolveCurrentState(roomId: string): Promise<void> {
    const head = await this.#head(roomId);
    if (head.extremities.length < 2) return;
    const prevs = head.extremities.slice(0, MAX_PREV_EVENTS);
    const resolved = await resolveStateBefore(this.#hs.store, roomId, head, prevs, this.stateResolver);
    await this.#hs.store.dag.setCurrentState(
      roomId,
      new Map(resolved.entries.map((e) => [stateKey(e.type, e.stateKey), e.eventId] as const)),
    );
    this.#heads.delete(roomId);
  }

  /** Client-server redaction rule: the target is in this room, and the sender sent it or has the redact level. */
  async #checkRedaction(head: RoomHead, roomId: string, sender: string, target: string): Promise<void> {
    const original = await this.#hs.store.events.getEvent(target);
    if (!original || original.roomId !== roomId) throw new AmiError("M_NOT_FOUND", "Event not found in this room");
    const pl = head.auth.get(stateKey("m.room.power_levels", ""))?.content;
    const create = head.auth.get(stateKey("m.room.create", ""));
    if (!mayRedact(sender, original, pl, create))
      throw new AmiError("M_FORBIDDEN", "You may only redact your own events");
  }

  createRoom(creator: string, body: JsonObject): Promise<{ roomId: string }> {
    return createRoom(this.#hs, this, creator, body);
  }

  async setMembership(p: {
    roomId: string;
    sender: string;
    target: string;
    membership: Membership;
    reason?: string;
    extra?: EventContent;
  }): Promise<{ eventId: string }> {
    const { store } = this.#hs;
    if (!isValidRoomId(p.roomId)) throw new AmiError("M_INVALID_PARAM", `Invalid room ID '${p.roomId}'`);
    if (!parseUserId(p.target)) throw new AmiError("M_INVALID_PARAM", `Invalid user ID '${p.target}'`);
    const current = (await this.authState(p.roomId)).get(stateKey("m.room.member", p.target));
    const currentMembership = current?.content.membership;
    // Joining again while joined, or leaving while already out, changes nothing: answer with the current event.
    if (
      current &&
      currentMembership === p.membership &&
      p.sender === p.target &&
      (p.membership === "join" || p.membership === "leave")
    ) {
      return { eventId: current.event_id };
    }
    if (p.membership === "leave" && p.sender === p.target && (!current || currentMembership === "leave")) {
      throw new AmiError("M_FORBIDDEN", "You are not in this room");
    }
    // As Synapse: an admin-blocked room takes no new members (joins, invites, knocks); leaving and bans still work.
    if (p.membership !== "leave" && p.membership !== "ban" && (await store.rooms.getRoomBlock(p.roomId)))
      throw new AmiError("M_FORBIDDEN", "This room has been blocked on this server");
    const content: EventContent = { ...(p.extra ?? {}), membership: p.membership };
    if (p.reason !== undefined) content.reason = p.reason;
    if (p.membership === "join" || p.membership === "invite" || p.membership === "knock") {
      const isLocal = parseUserId(p.target)?.server === this.#hs.serverName;
      const user = isLocal ? await store.accounts.getUser(p.target) : null;
      if (isLocal && (!user || user.deactivated)) throw new AmiError("M_NOT_FOUND", `Unknown user ${p.target}`);
      if (user?.displayname) content.displayname = user.displayname;
      if (user?.avatarUrl) content.avatar_url = user.avatarUrl;
      // A remote invitee's profile, asked of their server (as Synapse's include_profile_data_on_invite; best
      // effort, before the room's lock: a server that does not answer only leaves it out).
      if (!isLocal && p.membership === "invite" && this.#hs.config.federation.enabled) {
        const profile = await remoteProfile(this.#hs, p.target).catch(() => ({}) as Record<string, string>);
        if (profile.displayname) content.displayname = profile.displayname;
        if (profile.avatar_url) content.avatar_url = profile.avatar_url;
      }
    }
    const { eventId } = await this.sendEvent({
      roomId: p.roomId,
      sender: p.sender,
      type: "m.room.member",
      stateKey: p.target,
      content,
    });
    return { eventId };
  }
}

function validateInput(input: SendEventInput): void {
  if (!isValidRoomId(input.roomId)) throw new AmiError("M_INVALID_PARAM", `Invalid room ID '${input.roomId}'`);
  if (typeof input.type !== "string" || input.type.length === 0 || Buffer.byteLength(input.type) > MAX_KEY_BYTES) {
    throw new AmiError("M_INVALID_PARAM", "Event type must be a non-empty string of at most 255 bytes");
  }
  if (input.stateKey === undefined && STATE_ONLY_TYPES.has(input.type)) {
    throw new AmiError("M_BAD_JSON", `${input.type} is a state event: send it with PUT /rooms/{roomId}/state`);
  }
  if (
    input.stateKey !== undefined &&
    (typeof input.stateKey !== "string" || Buffer.byteLength(input.stateKey) > MAX_KEY_BYTES)
  ) {
    throw new AmiError("M_INVALID_PARAM", "State key must be a string of at most 255 bytes");
  }
  if (!input.content || typeof input.content !== "object" || Array.isArray(input.content)) {
    throw new AmiError("M_BAD_JSON", "Event content must be a JSON object");
  }
}
