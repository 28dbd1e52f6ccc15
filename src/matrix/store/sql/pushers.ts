/** PusherStore for both backends: pushers and the notifications recorded for users. */
import type { Sql } from "../sql.ts";
import type { NotificationRow, PusherRow, PusherStore } from "../types.ts";

const UPSERT = `INSERT INTO pushers (user_id, app_id, pushkey, device_id, kind, app_display_name, device_display_name,
    profile_tag, lang, data, pushkey_ts)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (user_id, app_id, pushkey) DO UPDATE SET device_id = excluded.device_id, kind = excluded.kind,
    app_display_name = excluded.app_display_name, device_display_name = excluded.device_display_name,
    profile_tag = excluded.profile_tag, lang = excluded.lang, data = excluded.data, pushkey_ts = excluded.pushkey_ts`;

export class SqlPusherStore implements PusherStore {
  readonly #sql: Sql;
  constructor(sql: Sql) {
    this.#sql = sql;
  }

  async setPusher(p: PusherRow, append: boolean): Promise<void> {
    const upsert: [string, (string | number | null)[]] = [
      UPSERT,
      [
        p.userId,
        p.appId,
        p.pushkey,
        p.deviceId,
        p.kind,
        p.appDisplayName,
        p.deviceDisplayName,
        p.profileTag,
        p.lang,
        JSON.stringify(p.data),
        p.pushkeyTs,
      ],
    ];
    if (append) await this.#sql.atomic([upsert]);
    else
      await this.#sql.atomic([
        ["DELETE FROM pushers WHERE app_id = ? AND pushkey = ? AND user_id <> ?", [p.appId, p.pushkey, p.userId]],
        upsert,
      ]);
  }

  async deletePusher(userId: string, appId: string, pushkey: string): Promise<boolean> {
    const n = await this.#sql.run("DELETE FROM pushers WHERE user_id = ? AND app_id = ? AND pushkey = ?", [
      userId,
      appId,
      pushkey,
    ]);
    return n > 0;
  }

  deletePushersByKey(appId: string, pushkey: string): Promise<number> {
    return this.#sql.run("DELETE FROM pushers WHERE app_id = ? AND pushkey = ?", [appId, pushkey]);
  }

  async getPushers(userId: string): Promise<PusherRow[]> {
    const rows = await this.#sql.all("SELECT * FROM pushers WHERE user_id = ? ORDER BY app_id, pushkey", [userId]);
    return rows.map(pusherFromRow);
  }

  async getPushersOfUsers(userIds: string[]): Promise<PusherRow[]> {
    if (userIds.length === 0) return [];
    const rows = await this.#sql.all(
      `SELECT * FROM pushers WHERE ${this.#sql.anyOf("user_id")} ORDER BY user_id, app_id, pushkey`,
      [userIds],
    );
    return rows.map(pusherFromRow);
  }

  async addNotifications(rows: NotificationRow[]): Promise<void> {
    if (rows.length === 0) return;
    await this.#sql.atomic(
      rows.map((n) => [
        `INSERT INTO notifications (user_id, stream, room_id, event_id, ts, actions, highlight, profile_tag)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, stream) DO NOTHING`,
        [n.userId, n.stream, n.roomId, n.eventId, n.ts, JSON.stringify(n.actions), n.highlight, n.profileTag],
      ]),
    );
  }

  async getNotifications(
    userId: string,
    opts: { before?: number; limit: number; onlyHighlight: boolean },
  ): Promise<NotificationRow[]> {
    const params: (string | number | boolean)[] = [userId];
    let where = "user_id = ?";
    if (opts.before !== undefined) {
      where += " AND stream < ?";
      params.push(opts.before);
    }
    if (opts.onlyHighlight) {
      where += " AND highlight = ?";
      params.push(true);
    }
    params.push(opts.limit);
    const rows = await this.#sql.all(`SELECT * FROM notifications WHERE ${where} ORDER BY stream DESC LIMIT ?`, params);
    return rows.map((r) => ({
      userId: r.user_id,
      roomId: r.room_id,
      eventId: r.event_id,
      stream: Number(r.stream),
      ts: Number(r.ts),
      actions: JSON.parse(r.actions),
      highlight: !!r.highlight,
      profileTag: r.profile_tag,
    }));
  }

  deleteNotificationsBefore(ts: number): Promise<number> {
    return this.#sql.run("DELETE FROM notifications WHERE ts < ?", [ts]);
  }
}

function pusherFromRow(r: any): PusherRow {
  return {
    userId: r.user_id,
    deviceId: r.device_id,
    kind: r.kind,
    appId: r.app_id,
    pushkey: r.pushkey,
    appDisplayName: r.app_display_name,
    deviceDisplayName: r.device_display_name,
    profileTag: r.profile_tag,
    lang: r.lang,
    data: JSON.parse(r.data),
    pushkeyTs: Number(r.pushkey_ts),
  };
}
