/** The /sync response (client-server spec sync.yaml), as the engine and the WebSocket fast path build it. */
import type { BasicEvent, EventContent, StrippedStateEvent, SyncEvent } from "../../events/types.ts";

/** Account data, presence: the filter's `event_fields` may cut them too. */
export type SyncBasicEvent = Partial<BasicEvent>;

export interface RoomSummary {
  "m.heroes": string[];
  "m.joined_member_count": number;
  "m.invited_member_count": number;
}

export interface UnreadNotificationCounts {
  notification_count: number;
  highlight_count: number;
}

export interface Timeline {
  events: SyncEvent[];
  limited: boolean;
  prev_batch?: string;
}

export interface JoinedRoom {
  timeline: Timeline;
  state: { events: SyncEvent[] };
  ephemeral: { events: BasicEvent[] };
  account_data: { events: SyncBasicEvent[] };
  unread_notifications: UnreadNotificationCounts | undefined;
  /** Per thread root, when the filter asks for unread_thread_notifications. */
  unread_thread_notifications?: Record<string, UnreadNotificationCounts>;
  summary?: RoomSummary;
}

export interface LeftRoom {
  timeline: Timeline;
  state: { events: SyncEvent[] };
  account_data: { events: SyncBasicEvent[] };
}

export interface ToDeviceEvent {
  sender: string;
  type: string;
  content: EventContent;
}

export interface SyncResponse {
  next_batch: string;
  rooms: {
    join: Record<string, JoinedRoom>;
    invite: Record<string, { invite_state: { events: StrippedStateEvent[] } }>;
    leave: Record<string, LeftRoom>;
    knock: Record<string, { knock_state: { events: StrippedStateEvent[] } }>;
  };
  presence: { events: SyncBasicEvent[] };
  account_data: { events: SyncBasicEvent[] };
  to_device: { events: ToDeviceEvent[] };
  device_lists: { changed: string[]; left: string[] };
  device_one_time_keys_count: Record<string, number>;
  device_unused_fallback_key_types: string[];
}
