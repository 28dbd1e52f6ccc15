/**
 * The DeviceListStore: other servers' users' device lists as this server last heard them (federation/device-lists.ts),
 * kept right by their `m.device_list_update` / `m.signing_key_update` EDUs and resynced from `user/devices` on a
 * gap; and, for our own users, the stream position of the last `m.device_list_update` we sent (the `prev_id` chain
 * of the EDUs, and the `stream_id` `user/devices` answers).
 */
import type { JsonObject } from "../events/types.ts";

export interface RemoteDevice {
  /** The device's signed keys as its server published them (null: the device exists without keys yet). */
  keys: JsonObject | null;
  displayName: string | null;
}

export interface RemoteDeviceListRow {
  userId: string;
  /** The origin's `stream_id` of the last update applied (or of the resync). */
  streamId: number;
  devices: Record<string, RemoteDevice>;
  masterKey: JsonObject | null;
  selfSigningKey: JsonObject | null;
  /** When the row was last written (ms). */
  updatedTs: number;
}

export interface DeviceListStore {
  /** The cached lists of these users (absent: not cached), by user ID. */
  getRemoteDeviceLists(userIds: string[]): Promise<RemoteDeviceListRow[]>;
  /** Insert or replace the row of `row.userId`. */
  putRemoteDeviceList(row: RemoteDeviceListRow): Promise<void>;
  /** Forget these users' lists (no longer sharing a room, or their chain broke and could not be resynced). */
  deleteRemoteDeviceLists(userIds: string[]): Promise<void>;
  /** The stream position of each of our users' last outgoing device-list update; absent: never. */
  getDeviceListStreams(userIds: string[]): Promise<Map<string, number>>;
  /** Record `stream` as the user's last outgoing device-list update position (only ever raised). */
  setDeviceListStream(userId: string, stream: number): Promise<void>;
}
