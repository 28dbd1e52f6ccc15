/** Room versions this server can create and join (spec "Room Versions"). */

/** Every version we implement. Both are stable in the spec; /capabilities lists them as "stable". */
export const SUPPORTED_ROOM_VERSIONS: readonly string[] = Object.freeze(["10", "11"]);

/** Versions the spec marks stable, of those we support. */
export const STABLE_ROOM_VERSIONS: readonly string[] = SUPPORTED_ROOM_VERSIONS;

/** What createRoom uses without `room_version` (Synapse's default too). */
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
}

export function roomVersionRules(v: string): RoomVersionRules | null {
  switch (v) {
    case "10":
      return { implicitCreator: false, redactsInContent: false };
    case "11":
      return { implicitCreator: true, redactsInContent: true };
    default:
      return null;
  }
}
