/**
 * Push notifications (spec "Push Notifications", Server behaviour): after a local event is persisted, each local
 * recipient's push rules are evaluated (push-rules.ts `evaluate`, the function /sync's unread counts use); when they
 * say `notify` the notification is recorded (GET /notifications) and queued for the user's http pushers
 * (push-delivery.ts). Recipients are the users joined before the event (so the event is visible to them:
 * visibility.ts rule 2) and the target of an invite. Events are handled one at a time from a bounded queue, after
 * the send was answered.
 */
import { field, isJsonObject, type JsonObject } from "../events/types.ts";
import type { Homeserver, PushService } from "../hs.ts";
import type { NotificationRow } from "../store/types.ts";
import { unreadNotificationCount } from "./notifications.ts";
import { type GatewayNotification, PushDelivery } from "./push-delivery.ts";
import { evaluate, mergeRuleset, type NotifyContext, PUSH_RULES_TYPE, tweaksOf } from "./push-rules.ts";

interface Written {
  eventId: string;
  stream: number;
  pdu: JsonObject;
}

/** Written events waiting for evaluation; past it new ones are not evaluated (counted in `dropped`). */
const MAX_PENDING = 10_000;

export class Push implements PushService {
  readonly #hs: Homeserver;
  readonly delivery: PushDelivery;
  readonly #pending: Written[] = [];
  #running = false;
  #closed = false;
  /** Events not evaluated because the queue was full. */
  dropped = 0;

  constructor(hs: Homeserver) {
    this.#hs = hs;
    this.delivery = new PushDelivery(hs);
  }

  onEvent(ev: Written): void {
    if (this.#closed) return;
    if (this.#pending.length >= MAX_PENDING) {
      this.dropped++;
      return;
    }
    this.#pending.push(ev);
    if (!this.#running) void this.#drain();
  }

  forgetPusher(userId: string, appId: string, pushkey: string): void {
    this.delivery.forget(userId, appId, pushkey);
  }

  close(): void {
    this.#closed = true;
    this.#pending.length = 0;
    this.delivery.close();
  }

  async #drain(): Promise<void> {
    this.#running = true;
    try {
      for (let ev = this.#pending.shift(); ev && !this.#closed; ev = this.#pending.shift()) {
        try {
          await this.#handle(ev);
        } catch (e) {
          if (!this.#closed)
            this.#hs.log.warn("push: could not evaluate an event", { eventId: ev.eventId, err: String(e) });
        }
      }
    } finally {
      this.#running = false;
    }
  }

  async #handle({ eventId, stream, pdu }: Written): Promise<void> {
    const hs = this.#hs;
    const { store } = hs;
    const roomId = String(pdu.room_id);
    const sender = String(pdu.sender);
    const type = String(pdu.type);
    const local = (u: string) => u.endsWith(`:${hs.serverName}`);
    const members = await store.events.getMembers(roomId, "join");
    const recipients = new Set(
      members.filter((m) => m.userId !== sender && m.stream < stream && local(m.userId)).map((m) => m.userId),
    );
    const target = pdu.state_key;
    if (
      type === "m.room.member" &&
      typeof target === "string" &&
      field(pdu.content, "membership") === "invite" &&
      target !== sender &&
      local(target)
    )
      recipients.add(target);
    if (recipients.size === 0) return;
    const ids = [...recipients];
    const [ruleRows, users] = await Promise.all([
      store.accountData.getAccountDataOfUsers(ids, null, PUSH_RULES_TYPE),
      store.accounts.getUsers(ids),
    ]);
    const rules = new Map(ruleRows.map((r) => [r.userId, r.content]));
    const canNotifyRoom = mentionsRoom(pdu.content) ? await senderMayNotifyRoom(hs, roomId, sender) : false;
    const rows: NotificationRow[] = [];
    for (const u of users) {
      if (u.deactivated) continue;
      const ctx: NotifyContext = {
        userId: u.userId,
        displayname: u.displayname ?? null,
        memberCount: members.length,
        senderCanNotifyRoom: canNotifyRoom,
      };
      const res = evaluate(mergeRuleset(u.userId, rules.get(u.userId)), pdu, ctx);
      if (!res.notify) continue;
      rows.push({
        userId: u.userId,
        roomId,
        eventId,
        stream,
        ts: Number(pdu.origin_server_ts) || Date.now(),
        actions: res.actions,
        highlight: res.highlight,
        profileTag: null,
      });
    }
    if (rows.length === 0) return;
    await store.pushers.addNotifications(rows);
    const pushers = (await store.pushers.getPushersOfUsers(rows.map((r) => r.userId))).filter((p) => p.kind === "http");
    if (pushers.length === 0) return;
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

/** Whether `sender` has power level >= notifications.room (default 50); without power levels, the creator does. */
async function senderMayNotifyRoom(hs: Homeserver, roomId: string, sender: string): Promise<boolean> {
  const pl = await hs.store.events.getCurrentStateEvent(roomId, "m.room.power_levels", "");
  if (!pl) return (await hs.store.events.getCurrentStateEvent(roomId, "m.room.create", ""))?.sender === sender;
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
