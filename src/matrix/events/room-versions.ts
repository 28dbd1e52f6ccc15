/** Room versions this server can create and join (spec "Room Versions"). */

/** Every version we implement. All are stable in the spec; /capabilities lists them as "stable". */
export const SUPPORTED_ROOM_VERSIONS: readonly string[] = Object.freeze(["10", "11", "12"]);

/** Versions the spec marks stable, of those we support. */
export const STABLE_ROOM_VERSIONS: readonly string[] = SUPPORTED_ROOM_VERSIONS;

/** What createRoom uses without `room_version` (Synapse's default too; the spec names none). */
export const DEFAULT_ROOM_VERSION = "10";

export function isSupportedRoomVersion(v: string): boolean {
  return SUPPORTED_ROOM_VERSIONS.includes(v);
}

/** The `m.room_versions` capability of `GET /_matrix/client/v3/capabilities`. */
export function roomVersionsCapability(): { default: string; available: Record<string, "stable" | "unstable"> } {
  const available: Record<string, "stable" | "unstable"> = {};
  for (const v of SUPPORTED_ROOM_VERSIONS) available[v] = STABLE_ROOM_VERSIONS.includes(v) ? "stable" : "unstable";
  return { default: DEFAULT_ROOM_VERSION, available };
}

/** The version-dependent behaviour, looked up once instead of comparing strings everywhere. */
export interface RoomVersionRules {
  /** v11: the room creator is the create event's `sender`; `content.creator` is gone. */
  implicitCreator: boolean;
  /** v11: `redacts` lives in `content` of m.room.redaction. */
  redactsInContent: boolean;
  /**
   * v12 (MSC4291): the room ID is the create event's ID with `!` for `$`; the create event has no `room_id` and
   * is never listed in `auth_events` (the room ID implies it).
   */
  roomIdIsCreateHash: boolean;
  /**
   * v12 (MSC4289): the create event's sender and `content.additional_creators` are the room's creators, with an
   * infinite power level; power levels must not list them.
   */
  privilegedCreators: boolean;
  /** State resolution: "v2" (rooms/v2) or v12's "v2.1" (MSC4297: empty start, conflicted state subgraph). */
  stateRes: "v2" | "v2.1";
}

export function roomVersionRules(v: string): RoomVersionRules | null {
  switch (v) {
    case "10":
      return {
        implicitCreator: false,
        redactsInContent: false,
        roomIdIsCreateHash: false,
        privilegedCreators: false,
        stateRes: "v2",
      };
    case "11":
      return {
        implicitCreator: true,
        redactsInContent: true,
        roomIdIsCreateHash: false,
        privilegedCreators: false,
        stateRes: "v2",
      };
    case "12":
      return {
        implicitCreator: true,
        redactsInContent: true,
        roomIdIsCreateHash: true,
        privilegedCreators: true,
        stateRes: "v2.1",
      };
    default:
      return null;
  }
}
