/**
 * Push notifications (spec "Push Notifications", Server behaviour): after a local event is persisted, each local
 * recipient's push rules are evaluated (push-rules.ts `evaluate`, the function /sync's unread counts use); when they
 * say `notify` the notification is recorded (GET /notifications) and queued for the user's http pushers
 * (push-delivery.ts). Recipients are the users joined before the event (so the event is visible to them:
 * visibility.ts rule 2) and the target of an invite. Events are handled in batches from a bounded queue, after
 * the send was answered.
 */
import { hasPrivilegedCreators, roomCreatorsOf } from "../events/power-levels.ts";
import { field, isJsonObject, type JsonObject } from "../events/types.ts";
import type { Homeserver, PushService } from "../hs.ts";
import type { NotificationRow, PusherRow } from "../store/types.ts";
import { unreadNotificationCount } from "./notifications.ts";
import { type GatewayNotification, PushDelivery } from "./push-delivery.ts";
import { evaluate, mergeRuleset, type NotifyContext, PUSH_RULES_TYPE, type Ruleset, tweaksOf } from "./push-rules.ts";

interface Written {
  eventId: string;
  stream: number;
  pdu: JsonObject;
}

/** Written events waiting for evaluation; past it new ones are not evaluated (counted in `dropped`). */
const MAX_PENDING = 10_000;
/** Events evaluated together (one read of members, rules and pushers, one write of notifications). */
const BATCH = 200;
const MAX_CACHED_RULESETS = 20_000;
/** How often notifications past their retention are deleted. */
const TRIM_EVERY_MS = 3_600_000;

export class Push implements PushService {
  readonly #hs: Homeserver;
  readonly delivery: PushDelivery;
  readonly #pending: Written[] = [];
  #running = false;
  #closed = false;
  readonly #rules = new Map<string, { stamp: number; rules: Ruleset }>();
  /** Events not evaluated because the queue was full. */
  dropped = 0;

  readonly #trimTimer: NodeJS.Timeout;

  constructor(hs: Homeserver) {
    this.#hs = hs;
    this.delivery = new PushDelivery(hs);
    this.#trimTimer = setInterval(() => void this.trimNotifications(), TRIM_EVERY_MS);
    this.#trimTimer.unref();
  }

  /** Delete notifications older than `matrix.push.notificationRetentionDays`; returns how many. */
  async trimNotifications(now = Date.now()): Promise<number> {
    const days = this.#hs.config.push.notificationRetentionDays;
    try {
      return await this.#hs.store.pushers.deleteNotificationsBefore(now - days * 86_400_000);
    } catch (e) {
      this.#hs.log.warn("notification trim failed", { error: String(e) });
      return 0;
    }
  }

  onEvent(ev: Written): void {
    if (this.#closed) return;
    if (this.#pending.length >= MAX_PENDING) {
      this.dropped++;
      return;
    }
    this.#pending.push(ev);
    if (this.#running) return;
    // Started after the current microtasks: the sends of one group commit resume one by one, and all of them
    // then go into one batch (one read of members and rules, one notification write) instead of one each.
    this.#running = true;
    setImmediate(() => void this.#drain());
  }

  forgetPusher(userId: string, appId: string, pushkey: string): void {
    this.delivery.forget(userId, appId, pushkey);
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#trimTimer);
    this.#pending.length = 0;
    this.delivery.close();
  }

  async #drain(): Promise<void> {
    try {
      while (this.#pending.length > 0 && !this.#closed) {
        const batch = this.#pending.splice(0, BATCH);
        try {
          await this.#handle(batch);
        } catch (e) {
          if (!this.#closed)
            this.#hs.log.warn("push: could not evaluate events", { eventId: batch[0].eventId, err: String(e) });
        }
      }
    } finally {
      this.#running = false;
    }
  }

  /** Evaluate a batch of written events: one read of members, rules, users and pushers, one write of notifications. */
  async #handle(batch: Written[]): Promise<void> {
    const hs = this.#hs;
    const { store } = hs;
    const local = (u: string) => u.endsWith(`:${hs.serverName}`);
    const membersOf = await store.events.getMembersOfRooms([...new Set(batch.map((e) => String(e.pdu.room_id)))]);
    const recipientsOf = new Map<Written, { joined: number; ids: string[] }>();
    const everyone = new Set<string>();
    for (const ev of batch) {
      const { pdu } = ev;
      const sender = String(pdu.sender);
      const joined = (membersOf.get(String(pdu.room_id)) ?? []).filter((m) => m.membership === "join");
      const ids = new Set(
        joined.filter((m) => m.userId !== sender && m.stream < ev.stream && local(m.userId)).map((m) => m.userId),
      );
      const target = pdu.state_key;
      if (
        pdu.type === "m.room.member" &&
        typeof target === "string" &&
        field(pdu.content, "membership") === "invite" &&
        target !== sender &&
        local(target)
      )
        ids.add(target);
      if (ids.size === 0) continue;
      recipientsOf.set(ev, { joined: joined.length, ids: [...ids] });
      for (const id of ids) everyone.add(id);
    }
    if (everyone.size === 0) return;
    const all = [...everyone];
    const [ruleRows, userRows] = await Promise.all([
      store.accountData.getAccountDataOfUsers(all, null, PUSH_RULES_TYPE),
      store.accounts.getUsers(all),
    ]);
    const stored = new Map(ruleRows.map((r) => [r.userId, r]));
    const users = new Map(userRows.filter((u) => !u.deactivated).map((u) => [u.userId, u]));
    const rulesets = new Map<string, Ruleset>();
    const rows: NotificationRow[] = [];
    const rowsOf = new Map<Written, NotificationRow[]>();
    for (const [ev, { joined, ids }] of recipientsOf) {
      const { pdu } = ev;
      const roomId = String(pdu.room_id);
      const canNotifyRoom = mentionsRoom(pdu.content)
        ? await senderMayNotifyRoom(hs, roomId, String(pdu.sender))
        : false;
      const mine: NotificationRow[] = [];
      for (const id of ids) {
        const u = users.get(id);
        if (!u) continue;
        let rules = rulesets.get(id);
        if (!rules) {
          // Merged rulesets are kept per user while their m.push_rules row is unchanged (its stream).
          const row = stored.get(id);
          const stamp = row?.stream ?? 0;
          const hit = this.#rules.get(id);
          rules = hit && hit.stamp === stamp ? hit.rules : mergeRuleset(id, row?.content);
          if (!hit || hit.stamp !== stamp) {
            if (this.#rules.size >= MAX_CACHED_RULESETS) this.#rules.clear();
            this.#rules.set(id, { stamp, rules });
          }
          rulesets.set(id, rules);
        }
        const ctx: NotifyContext = {
          userId: id,
          displayname: u.displayname ?? null,
          memberCount: joined,
          senderCanNotifyRoom: canNotifyRoom,
        };
        const res = evaluate(rules, pdu, ctx);
        if (!res.notify) continue;
        mine.push({
          userId: id,
          roomId,
          eventId: ev.eventId,
          stream: ev.stream,
          ts: Number(pdu.origin_server_ts) || Date.now(),
          actions: res.actions,
          highlight: res.highlight,
          profileTag: null,
        });
      }
      if (mine.length === 0) continue;
      rows.push(...mine);
      rowsOf.set(ev, mine);
    }
    if (rows.length === 0) return;
    await store.pushers.addNotifications(rows);
    const pushers = (await store.pushers.getPushersOfUsers([...new Set(rows.map((r) => r.userId))])).filter(
      (p) => p.kind === "http",
    );
    if (pushers.length === 0) return;
    for (const [ev, mine] of rowsOf) await this.#push(ev, mine, pushers);
  }

  /** Queue one event's notifications for the pushers of the users it notifies. */
  async #push({ eventId, pdu }: Written, rows: NotificationRow[], all: PusherRow[]): Promise<void> {
    const hs = this.#hs;
    const pushers = all.filter((p) => rows.some((r) => r.userId === p.userId));
    if (pushers.length === 0) return;
    const roomId = String(pdu.room_id);
    const sender = String(pdu.sender);
    const type = String(pdu.type);
    const target = pdu.state_key;
    const full = pushers.some((p) => p.data.format !== "event_id_only");
    const [roomName, senderName] = full ? await names(hs, roomId, sender) : [undefined, undefined];
    for (const row of rows) {
      const mine = pushers.filter((p) => p.userId === row.userId);
      if (mine.length === 0) continue;
      const tweaks = tweaksOf(row.actions);
      const counts = { unread: await unreadNotificationCount(hs, row.userId) };
      const prio: "high" | "low" =
        type === "m.room.encrypted" || tweaks.highlight === true || tweaks.sound !== undefined ? "high" : "low";
      for (const p of mine) {
        const n: GatewayNotification =
          p.data.format === "event_id_only"
            ? { event_id: eventId, room_id: roomId, prio, counts }
            : {
                event_id: eventId,
                room_id: roomId,
                type,
                sender,
                ...(senderName ? { sender_display_name: senderName } : {}),
                ...(roomName ? { room_name: roomName } : {}),
                ...(typeof target === "string" && type === "m.room.member"
                  ? { user_is_target: target === row.userId }
                  : {}),
                prio,
                content: isJsonObject(pdu.content) ? pdu.content : {},
                counts,
              };
        this.delivery.enqueue(p, n, tweaks);
      }
    }
  }
}

function mentionsRoom(content: unknown): boolean {
  return (
    isJsonObject(content) &&
    (field(content, "m.mentions", "room") === true ||
      (typeof content.body === "string" && content.body.includes("@room")))
  );
}

/**
 * Whether `sender` has power level >= notifications.room (default 50); without power levels, the creator does; in
 * room version 12 the creators always do (infinite level).
 */
async function senderMayNotifyRoom(hs: Homeserver, roomId: string, sender: string): Promise<boolean> {
  const pl = await hs.store.events.getCurrentStateEvent(roomId, "m.room.power_levels", "");
  const create = await hs.store.events.getCurrentStateEvent(roomId, "m.room.create", "");
  const createLike = create ? { sender: create.sender, content: create.pdu.content ?? {} } : undefined;
  if (hasPrivilegedCreators(createLike) && roomCreatorsOf(createLike).includes(sender)) return true;
  if (!pl) return create?.sender === sender;
  const content = pl.pdu.content ?? {};
  const need = Number(field(content, "notifications", "room") ?? 50);
  const level = Number(field(content, "users", sender) ?? content.users_default ?? 0);
  return level >= need;
}

/** The room's name and the sender's display name in it (for pushers that want the full event). */
async function names(
  hs: Homeserver,
  roomId: string,
  sender: string,
): Promise<[string | undefined, string | undefined]> {
  const [name, member] = await Promise.all([
    hs.store.events.getCurrentStateEvent(roomId, "m.room.name", ""),
    hs.store.events.getCurrentStateEvent(roomId, "m.room.member", sender),
  ]);
  const n = field(name?.pdu.content, "name");
  const d = field(member?.pdu.content, "displayname");
  return [typeof n === "string" && n ? n : undefined, typeof d === "string" && d ? d : undefined];
}
