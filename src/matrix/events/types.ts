/**
 * Matrix event shapes, after the spec's event schemas (spec/matrix/data/event-schemas/schema/): the PDU
 * (server-server "PDUs"), the client-format event (client-server "ClientEvent"), stripped state, and the state
 * contents the server itself reads. Contents come from clients and other servers, so a content type says what
 * the spec allows, not what was checked: code that decides something still checks the value (`typeof`).
 * Content nobody here reads stays `EventContent`.
 */

export type JsonObject = Record<string, unknown>;
/** Any event's `content`. */
export type EventContent = JsonObject;

/** `signatures`: server name -> key ID (`ed25519:abc`) -> unpadded base64 signature. */
export type Signatures = Record<string, Record<string, string>>;

/** `unsigned` of a PDU: only what servers pass along (never covered by hashes or signatures). */
export interface PduUnsigned {
  age?: number;
  /** The stripped state an invite or knock carries to the invitee's / knocker's server. */
  invite_room_state?: StrippedStateEvent[];
  knock_room_state?: StrippedStateEvent[];
  [key: string]: unknown;
}

/**
 * A persistent data unit, the federation format (room versions 3+, so ours: 10 and 11). Its event ID is not a
 * field but the reference hash (`$` + base64url sha256 of the redacted, unsigned event).
 */
export interface Pdu<C extends object = EventContent> {
  room_id: string;
  sender: string;
  type: string;
  /** Present (possibly "") on state events, absent on message events. */
  state_key?: string;
  content: C;
  origin_server_ts: number;
  /** Event IDs (v3+); v1/v2 rooms used [id, hashes] pairs, which we do not serve. */
  prev_events: string[];
  auth_events: string[];
  depth: number;
  hashes: { sha256: string };
  signatures: Signatures;
  unsigned?: PduUnsigned;
  /** m.room.redaction before v11 (v11 moved it into `content.redacts`). */
  redacts?: string;
  /** Only v1/v2 PDUs carry their ID; never set on ours. */
  event_id?: string;
  /** v1-v10 carried `origin`; ignored (not checked) by every version. */
  origin?: string;
}

/** A PDU before hashing and signing (what the room service builds). */
export type UnsignedPdu<C extends object = EventContent> = Omit<Pdu<C>, "hashes" | "signatures"> &
  Partial<Pick<Pdu<C>, "hashes" | "signatures">>;

/** `unsigned` of a client event (client-server "UnsignedData"). */
export interface ClientUnsigned {
  age?: number;
  transaction_id?: string;
  /** The previous content of this state slot (state events only). */
  prev_content?: EventContent;
  replaces_state?: string;
  /** The redaction event that redacted this one. */
  redacted_because?: ClientEvent;
  membership?: string;
  "m.relations"?: JsonObject;
  invite_room_state?: StrippedStateEvent[];
  knock_room_state?: StrippedStateEvent[];
  [key: string]: unknown;
}

/** An event as /sync, /messages, /context, /event... return it (client-server "ClientEventWithoutRoomID"). */
export interface ClientEventWithoutRoomId<C extends object = EventContent> {
  event_id: string;
  type: string;
  sender: string;
  state_key?: string;
  content: C;
  origin_server_ts: number;
  unsigned?: ClientUnsigned;
  /** m.room.redaction in rooms before v11. */
  redacts?: string;
}

/** A /sync event: ClientEventWithoutRoomID, cut to the filter's `event_fields` when it has them. */
export type SyncEvent = Partial<ClientEventWithoutRoomId>;

/** Client-server "ClientEvent": the room's ID included (everywhere but /sync's per-room sections). */
export interface ClientEvent<C extends object = EventContent> extends ClientEventWithoutRoomId<C> {
  room_id: string;
}

/** Stripped state (core-event-schema/stripped_state.yaml): invites, knocks, room previews. */
export interface StrippedStateEvent<C extends object = EventContent> {
  type: string;
  state_key: string;
  sender: string;
  content: C;
}

/** Events outside rooms (account data, ephemeral, to-device, presence): a type and a content. */
export interface BasicEvent<C extends object = EventContent> {
  type: string;
  content: C;
  sender?: string;
  room_id?: string;
}

// ---- state contents the server reads ----

/** m.room.create */
export interface CreateContent {
  /** Before v11: the creator (v11 uses the event's sender). */
  creator?: string;
  "m.federate"?: boolean;
  room_version?: string;
  /** Room type, e.g. "m.space". */
  type?: string;
  predecessor?: { room_id: string; event_id?: string };
  additional_creators?: string[];
  [key: string]: unknown;
}

export type Membership = "invite" | "join" | "knock" | "leave" | "ban";

/** m.room.member */
export interface MemberContent {
  membership: Membership;
  displayname?: string | null;
  avatar_url?: string;
  is_direct?: boolean;
  /** Restricted joins: the user of the resident server that authorised the join. */
  join_authorised_via_users_server?: string;
  reason?: string;
  third_party_invite?: {
    display_name: string;
    signed: { mxid: string; token: string; signatures: Signatures };
  };
  [key: string]: unknown;
}

/** m.room.power_levels */
export interface PowerLevelsContent {
  ban?: number;
  events?: Record<string, number>;
  events_default?: number;
  invite?: number;
  kick?: number;
  redact?: number;
  state_default?: number;
  users?: Record<string, number>;
  users_default?: number;
  notifications?: { room?: number; [key: string]: number | undefined };
  [key: string]: unknown;
}

export type JoinRule = "public" | "knock" | "invite" | "private" | "restricted" | "knock_restricted";

/** One entry of a restricted join rule's `allow` list. */
export interface JoinRuleAllow {
  type: "m.room_membership" | (string & {});
  /** The room whose members may join (type m.room_membership). */
  room_id?: string;
}

/** m.room.join_rules */
export interface JoinRulesContent {
  join_rule: JoinRule;
  /** restricted / knock_restricted: who may join without an invite. */
  allow?: JoinRuleAllow[];
  [key: string]: unknown;
}

export type HistoryVisibility = "invited" | "joined" | "shared" | "world_readable";

/** m.room.history_visibility */
export interface HistoryVisibilityContent {
  history_visibility: HistoryVisibility;
  [key: string]: unknown;
}

/** m.room.guest_access */
export interface GuestAccessContent {
  guest_access: "can_join" | "forbidden";
  [key: string]: unknown;
}

/** m.room.name */
export interface NameContent {
  name: string;
  [key: string]: unknown;
}

/** m.room.topic: `topic` plain text; `m.topic` the same in several mimetypes. */
export interface TopicContent {
  topic: string;
  "m.topic"?: { "m.text": { body: string; mimetype?: string }[] };
  [key: string]: unknown;
}

/** m.room.avatar */
export interface AvatarContent {
  url?: string;
  info?: JsonObject;
  [key: string]: unknown;
}

/** m.room.canonical_alias */
export interface CanonicalAliasContent {
  alias?: string | null;
  alt_aliases?: string[];
  [key: string]: unknown;
}

/** m.room.encryption */
export interface EncryptionContent {
  algorithm: string;
  rotation_period_ms?: number;
  rotation_period_msgs?: number;
  [key: string]: unknown;
}

/** m.room.server_acl */
export interface ServerAclContent {
  allow?: string[];
  deny?: string[];
  allow_ip_literals?: boolean;
  [key: string]: unknown;
}

/** The state event types whose content the server reads, by type. */
export interface StateContents {
  "m.room.create": CreateContent;
  "m.room.member": MemberContent;
  "m.room.power_levels": PowerLevelsContent;
  "m.room.join_rules": JoinRulesContent;
  "m.room.history_visibility": HistoryVisibilityContent;
  "m.room.guest_access": GuestAccessContent;
  "m.room.name": NameContent;
  "m.room.topic": TopicContent;
  "m.room.avatar": AvatarContent;
  "m.room.canonical_alias": CanonicalAliasContent;
  "m.room.encryption": EncryptionContent;
  "m.room.server_acl": ServerAclContent;
}

/**
 * The content of an event of a known state type, as the spec shapes it. Stored events passed our auth rules
 * (which check the fields they decide on) but their other fields are as the sender wrote them: check types of
 * what you branch on.
 */
export function contentOf<T extends keyof StateContents>(
  _type: T,
  ev: { content?: unknown } | undefined | null,
): Partial<StateContents[T]> | undefined {
  return ev?.content as Partial<StateContents[T]> | undefined;
}

export const isJsonObject = (x: unknown): x is JsonObject => typeof x === "object" && x !== null && !Array.isArray(x);

/** `x[k0][k1]...` through plain objects only (`undefined` past anything else): reads untrusted nested content. */
export function field(x: unknown, ...keys: string[]): unknown {
  let cur = x;
  for (const k of keys) {
    if (!isJsonObject(cur)) return undefined;
    cur = cur[k];
  }
  return cur;
}
