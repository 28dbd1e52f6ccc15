/**
 * Our users' typing, read receipts and presence, sent as EDUs to the servers of the remote members of their rooms
 * (current state's joined members). Only with federation on; a failure here is logged, never the client's error.
 * Each is coalesced in the sender's queue (typing per room+user, receipts per room+user, presence per user), so a
 * burst to a slow server costs one EDU each.
 */
import { serverNameOf } from "../events/ids.ts";
import type { Homeserver } from "../hs.ts";

/** Rooms whose remote servers RoomHosts keeps. */
const MAX_CACHED_ROOMS = 10_000;
/** With workers: a cached set is re-read after this (a lost bus message leaves it stale this long at most). */
const HOSTS_TTL_MS = 30_000;

/**
 * The other servers joined to each room, kept up to date by the member events written (the stream writer reports
 * each: a join adds its server, any other membership drops the room's entry) and dropped when the room's current
 * state is reset (`invalidateRoomHosts`): a send to a room of 5,000 members then reads no member list. A read that
 * overlaps such a change is not kept. With workers, the member events another worker writes are not seen here: each
 * change is published on the bus (every worker drops the room's entry), and entries are re-read after HOSTS_TTL_MS
 * in case a bus message was lost.
 */
class RoomHosts {
  readonly #hs: Homeserver;
  readonly #cache = new Map<string, Set<string>>();
  readonly #gen = new Map<string, number>();
  /** When each entry was read (with workers only: entries expire). */
  readonly #at = new Map<string, number>();
  readonly #ttl: number;
  constructor(hs: Homeserver) {
    this.#hs = hs;
    this.#ttl = hs.config.workers > 1 ? HOSTS_TTL_MS : Number.POSITIVE_INFINITY;
    hs.cluster.bus.subscribe((m) => {
      if (m.t === "hosts" && typeof m.roomId === "string") this.invalidate(m.roomId, false);
    });
    hs.stream.onWritten((_pos, ev) => {
      if (ev?.type !== "m.room.member") return;
      hs.cluster.bus.publish({ t: "hosts", roomId: ev.roomId });
      // A join only adds its server; anything else may remove one: read again.
      const server = ev.stateKey === null ? null : serverNameOf(ev.stateKey);
      const cached = this.#cache.get(ev.roomId);
      if (ev.pdu.content?.membership === "join" && server && cached) {
        if (server !== hs.serverName) cached.add(server);
        this.#gen.set(ev.roomId, (this.#gen.get(ev.roomId) ?? 0) + 1);
      } else this.invalidate(ev.roomId, false);
    });
  }

  invalidate(roomId: string, publish = true): void {
    if (publish) this.#hs.cluster.bus.publish({ t: "hosts", roomId });
    this.#cache.delete(roomId);
    this.#gen.set(roomId, (this.#gen.get(roomId) ?? 0) + 1);
  }

  async get(roomIds: string[]): Promise<Set<string>> {
    const out = new Set<string>();
    // A partial-state room knows few of its members: the servers the resident named are in it too.
    for (const r of roomIds) for (const s of this.#hs.partialState?.serversOf(r) ?? []) out.add(s);
    const now = Date.now();
    const missing = roomIds.filter((r) => {
      let hit = this.#cache.get(r);
      if (hit && now - (this.#at.get(r) ?? 0) > this.#ttl) {
        this.#cache.delete(r);
        hit = undefined;
      }
      for (const s of hit ?? []) out.add(s);
      return !hit;
    });
    if (missing.length === 0) return out;
    const gens = missing.map((r) => this.#gen.get(r) ?? 0);
    const byRoom = await this.#hs.store.events.getMembersOfRooms(missing);
    missing.forEach((roomId, i) => {
      const servers = new Set<string>();
      for (const m of byRoom.get(roomId) ?? []) {
        if (m.membership !== "join") continue;
        const s = serverNameOf(m.userId);
        if (s && s !== this.#hs.serverName) servers.add(s);
      }
      for (const s of servers) out.add(s);
      if ((this.#gen.get(roomId) ?? 0) !== gens[i]) return;
      if (this.#cache.size >= MAX_CACHED_ROOMS) {
        this.#cache.clear();
        this.#gen.clear();
        this.#at.clear();
      }
      this.#cache.set(roomId, servers);
      if (this.#ttl !== Number.POSITIVE_INFINITY) this.#at.set(roomId, now);
    });
    return out;
  }
}

const hosts = new WeakMap<Homeserver, RoomHosts>();
const hostsOf = (hs: Homeserver): RoomHosts => {
  let h = hosts.get(hs);
  if (!h) {
    h = new RoomHosts(hs);
    hosts.set(hs, h);
  }
  return h;
};

/**
 * Start following member events from start-up (not at the first send): with workers, the member events this process
 * writes must be announced to the others even before it sends anything itself.
 */
export function watchRoomHosts(hs: Homeserver): void {
  hostsOf(hs);
}

/** Forget the cached servers of a room whose memberships changed other than by a written member event. */
export function invalidateRoomHosts(hs: Homeserver, roomId: string): void {
  hosts.get(hs)?.invalidate(roomId);
}

/** The other servers with a member joined to any of `roomIds` (cached: RoomHosts). */
export function remoteServers(hs: Homeserver, roomIds: string[]): Promise<Set<string>> {
  return hostsOf(hs).get(roomIds);
}

function guarded(hs: Homeserver, what: string, fn: () => Promise<void>): void {
  if (!hs.config.federation.enabled) return;
  void fn().catch((e) => hs.log.warn(`federation: cannot send ${what}`, { err: String(e).slice(0, 300) }));
}

/**
 * A local event, as the signed PDU, to every other server with a member joined to its room (after the event: a
 * join of a remote user includes that user's server), plus the target's server of a membership event (an invite,
 * kick or ban reaches the user's server too). The sender's queue batches them per destination. `except`: a server
 * that has it already (a remote join accepted by send_join goes to the room's other servers). `stream`: the local
 * event's position here, so the sender's catch-up can resend it after a restart or an overflow.
 */
export function sendPduOut(
  hs: Homeserver,
  roomId: string,
  pdu: Record<string, unknown>,
  memberTarget?: string,
  except?: string,
  stream?: number,
): void {
  if (!hs.config.federation.enabled) return;
  // A room's events reach the sender in the order they were persisted (stream order): the servers lookup of one
  // may take longer than the next one's (a cache miss), which would hand them over swapped.
  let chains = outChains.get(hs);
  if (!chains) {
    chains = new Map();
    outChains.set(hs, chains);
  }
  const tail = (chains.get(roomId) ?? Promise.resolve())
    .then(async () => {
      const servers = await remoteServers(hs, [roomId]);
      if (except) servers.delete(except);
      const target = memberTarget === undefined ? null : serverNameOf(memberTarget);
      if (target && target !== hs.serverName) servers.add(target);
      if (servers.size === 0) return;
      hs.federation.sender.sendPdus(servers, [pdu], stream);
    })
    .catch((e) => hs.log.warn("federation: cannot send PDU", { err: String(e).slice(0, 300) }))
    .finally(() => {
      if (chains.get(roomId) === tail) chains.delete(roomId);
    });
  chains.set(roomId, tail);
}

/** Per homeserver and room, the last PDU hand-over (sendPduOut keeps them in order). */
const outChains = new WeakMap<Homeserver, Map<string, Promise<void>>>();

export function sendTypingEdu(hs: Homeserver, roomId: string, userId: string, typing: boolean): void {
  guarded(hs, "typing", async () => {
    const servers = await remoteServers(hs, [roomId]);
    if (servers.size === 0) return;
    hs.federation.sender.sendEdu(
      servers,
      { edu_type: "m.typing", content: { room_id: roomId, user_id: userId, typing } },
      `${roomId}\u0000${userId}`,
    );
  });
}

export function sendReceiptEdu(
  hs: Homeserver,
  roomId: string,
  userId: string,
  eventId: string,
  threadId: string | null,
): void {
  guarded(hs, "receipt", async () => {
    const servers = await remoteServers(hs, [roomId]);
    if (servers.size === 0) return;
    const data: Record<string, unknown> = { ts: Date.now() };
    if (threadId !== null) data.thread_id = threadId;
    hs.federation.sender.sendEdu(
      servers,
      { edu_type: "m.receipt", content: { [roomId]: { "m.read": { [userId]: { event_ids: [eventId], data } } } } },
      `${roomId}\u0000${userId}\u0000${threadId ?? ""}`,
    );
  });
}

export function sendPresenceEdu(hs: Homeserver, userId: string, presence: string, statusMsg: string | null): void {
  guarded(hs, "presence", async () => {
    if (serverNameOf(userId) !== hs.serverName) return;
    const rooms = (await hs.store.events.getRoomsForUser(userId)).filter((m) => m.membership === "join");
    if (rooms.length === 0) return;
    const servers = await remoteServers(
      hs,
      rooms.map((m) => m.roomId),
    );
    if (servers.size === 0) return;
    const p: Record<string, unknown> = { user_id: userId, presence, last_active_ago: 0 };
    if (statusMsg !== null) p.status_msg = statusMsg;
    if (presence === "online") p.currently_active = true;
    hs.federation.sender.sendEdu(servers, { edu_type: "m.presence", content: { push: [p] } }, userId);
  });
}
