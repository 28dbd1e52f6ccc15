/**
 * Typing notifications (spec: "Typing Notifications"): in memory only. A user types in a room until they say
 * they stopped or their `timeout` elapses; every change bumps `serial` (part of sync tokens) and wakes /sync.
 */
import type { Homeserver, TypingService } from "../hs.ts";

/** Longest a single PUT /typing keeps a user typing; clients re-send while the user keeps typing. */
export const MAX_TYPING_TIMEOUT_MS = 30_000;
/** Rooms whose last change is remembered for diffing sync tokens; older changes are forgotten (see changedSince). */
const MAX_CHANGED_ROOMS = 10_000;

interface Entry {
  expires: number;
  timer: NodeJS.Timeout;
}

export class Typing implements TypingService {
  readonly #hs: Homeserver;
  /** roomId -> userId -> entry, in the order users started typing. */
  readonly #rooms = new Map<string, Map<string, Entry>>();
  /** roomId -> serial of its last change, oldest change first (re-inserted on every change). */
  readonly #changed = new Map<string, number>();
  /** Changes up to this serial were forgotten to bound #changed. */
  #forgotten = 0;
  #serial = 0;

  /** Several workers: serials are clock-based so that tokens from one worker mean about the same on another. */
  readonly #clustered: boolean;

  constructor(hs: Homeserver) {
    this.#hs = hs;
    this.#clustered = hs.cluster.workers > 1;
    // Typing is in memory: every worker keeps the whole set, from its own changes and the others' (cluster/bus.ts).
    hs.cluster.bus.subscribe((m) => {
      if (m.t !== "typing" || typeof m.roomId !== "string" || typeof m.userId !== "string") return;
      this.#apply(m.roomId, m.userId, m.typing === true, Number(m.timeoutMs), Number(m.serial) || 0);
    });
  }

  get serial(): number {
    return this.#serial;
  }

  setTyping(roomId: string, userId: string, typing: boolean, timeoutMs: number): void {
    const serial = this.#apply(roomId, userId, typing, timeoutMs, 0);
    if (serial !== null && this.#clustered)
      this.#hs.cluster.bus.publish({ t: "typing", roomId, userId, typing, timeoutMs, serial });
  }

  /** Apply a change (`atLeast`: the sender's serial of a change from another worker); the new serial, or null if none. */
  #apply(roomId: string, userId: string, typing: boolean, timeoutMs: number, atLeast: number): number | null {
    let users = this.#rooms.get(roomId);
    const cur = users?.get(userId);
    if (!typing) {
      if (!cur || !users) return null;
      clearTimeout(cur.timer);
      users.delete(userId);
      if (users.size === 0) this.#rooms.delete(roomId);
      return this.#bump(roomId, atLeast);
    }
    const ms = Math.max(
      0,
      Math.min(Number.isFinite(timeoutMs) ? timeoutMs : MAX_TYPING_TIMEOUT_MS, MAX_TYPING_TIMEOUT_MS),
    );
    if (cur) clearTimeout(cur.timer);
    const timer = setTimeout(() => this.#expire(roomId, userId), ms);
    timer.unref();
    if (!users) {
      users = new Map();
      this.#rooms.set(roomId, users);
    }
    users.set(userId, { expires: Date.now() + ms, timer });
    // Refreshing an existing typing user changes nothing a client can see: no wake-up.
    return cur ? null : this.#bump(roomId, atLeast);
  }

  typingIn(roomId: string): string[] {
    const users = this.#rooms.get(roomId);
    return users ? [...users.keys()] : [];
  }

  changedSince(serial: number): Set<string> {
    const out = new Set<string>();
    if (serial >= this.#serial) return out;
    for (const [room, s] of this.#changed) if (s > serial) out.add(room);
    // Part of the diff was forgotten: also send every room someone types in (what a token from before a restart
    // gets). Only a client more than MAX_CHANGED_ROOMS room changes behind can get here.
    if (serial < this.#forgotten) for (const room of this.#rooms.keys()) out.add(room);
    return out;
  }

  #expire(roomId: string, userId: string): void {
    const users = this.#rooms.get(roomId);
    const e = users?.get(userId);
    if (!users || !e) return;
    users.delete(userId);
    if (users.size === 0) this.#rooms.delete(roomId);
    this.#bump(roomId);
  }

  #bump(roomId: string, atLeast = 0): number {
    this.#serial = Math.max(this.#serial + 1, atLeast, this.#clustered ? Date.now() : 0);
    this.#changed.delete(roomId);
    this.#changed.set(roomId, this.#serial);
    if (this.#changed.size > MAX_CHANGED_ROOMS) {
      const [oldest, s] = this.#changed.entries().next().value as [string, number];
      this.#changed.delete(oldest);
      this.#forgotten = s;
    }
    this.#hs.notifier.notify();
    return this.#serial;
  }
}
