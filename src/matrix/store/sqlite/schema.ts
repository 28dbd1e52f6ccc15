/**
 * SQLite schema as versioned migrations: migration N brings the schema from version N-1 to N. Never edit a
 * released migration; append a new one. Text-keyed tables are WITHOUT ROWID (the key is the clustered index).
 */
export const MIGRATIONS: string[] = [
  // 1: initial schema
  `
  CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    password_hash TEXT,
    created_ts INTEGER NOT NULL,
    admin INTEGER NOT NULL DEFAULT 0,
    deactivated INTEGER NOT NULL DEFAULT 0,
    is_guest INTEGER NOT NULL DEFAULT 0,
    displayname TEXT,
    avatar_url TEXT
  ) WITHOUT ROWID;

  CREATE TABLE devices (
    user_id TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    device_id TEXT NOT NULL,
    display_name TEXT,
    created_ts INTEGER NOT NULL,
    last_seen_ts INTEGER,
    last_seen_ip TEXT,
    PRIMARY KEY (user_id, device_id)
  ) WITHOUT ROWID;

  CREATE TABLE access_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    created_ts INTEGER NOT NULL,
    FOREIGN KEY (user_id, device_id) REFERENCES devices(user_id, device_id) ON DELETE CASCADE
  ) WITHOUT ROWID;
  CREATE INDEX access_tokens_device ON access_tokens(user_id, device_id);

  CREATE TABLE registration_tokens (
    token TEXT PRIMARY KEY,
    uses_allowed INTEGER,
    pending INTEGER NOT NULL DEFAULT 0,
    completed INTEGER NOT NULL DEFAULT 0,
    expiry_ts INTEGER
  ) WITHOUT ROWID;

  CREATE TABLE rooms (
    room_id TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    creator TEXT NOT NULL,
    created_ts INTEGER NOT NULL,
    is_public INTEGER NOT NULL DEFAULT 0
  ) WITHOUT ROWID;

  -- stream is the rowid: events are clustered in stream order.
  CREATE TABLE events (
    stream INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    room_id TEXT NOT NULL REFERENCES rooms(room_id),
    type TEXT NOT NULL,
    state_key TEXT,
    sender TEXT NOT NULL,
    origin_server_ts INTEGER NOT NULL,
    depth INTEGER NOT NULL,
    contains_url INTEGER NOT NULL DEFAULT 0,
    pdu TEXT NOT NULL,
    redacted_by TEXT,
    txn_device_id TEXT,
    txn_id TEXT
  );
  CREATE INDEX events_room_stream ON events(room_id, stream);

  -- Every state change, so state at any stream position is one indexed query.
  CREATE TABLE state_history (
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    stream INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (room_id, type, state_key, stream)
  ) WITHOUT ROWID;

  CREATE TABLE current_state (
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    stream INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (room_id, type, state_key)
  ) WITHOUT ROWID;

  CREATE TABLE memberships (
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    membership TEXT NOT NULL,
    event_id TEXT NOT NULL,
    stream INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id)
  ) WITHOUT ROWID;
  CREATE INDEX memberships_user ON memberships(user_id);

  CREATE TABLE event_txns (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
  ) WITHOUT ROWID;

  CREATE TABLE room_aliases (
    alias TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    creator TEXT NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX room_aliases_room ON room_aliases(room_id);

  CREATE TABLE account_data (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    content TEXT NOT NULL,
    stream INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id, type)
  ) WITHOUT ROWID;
  CREATE INDEX account_data_user_stream ON account_data(user_id, stream);

  CREATE TABLE receipts (
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    type TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    ts INTEGER NOT NULL,
    stream INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id, type, thread_id)
  ) WITHOUT ROWID;
  CREATE INDEX receipts_room_stream ON receipts(room_id, stream);

  CREATE TABLE presence (
    user_id TEXT PRIMARY KEY,
    presence TEXT NOT NULL,
    status_msg TEXT,
    last_active_ts INTEGER NOT NULL,
    stream INTEGER NOT NULL
  ) WITHOUT ROWID;

  CREATE TABLE filters (
    filter_id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    filter TEXT NOT NULL
  );

  CREATE TABLE media (
    media_id TEXT PRIMARY KEY,
    uploader TEXT NOT NULL,
    content_type TEXT NOT NULL,
    filename TEXT,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    created_ts INTEGER NOT NULL
  ) WITHOUT ROWID;
  `,
  // 2: end-to-end encryption (store/keys-types.ts)
  `
  CREATE TABLE e2e_device_keys (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    keys TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id)
  ) WITHOUT ROWID;

  -- key_id is the full "<algorithm>:<id>"; (algorithm, key_id) order makes "first key of an algorithm" a seek.
  CREATE TABLE e2e_one_time_keys (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    key_id TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, algorithm, key_id)
  ) WITHOUT ROWID;

  CREATE TABLE e2e_fallback_keys (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    key_id TEXT NOT NULL,
    key TEXT NOT NULL,
    used INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, device_id, algorithm)
  ) WITHOUT ROWID;

  CREATE TABLE e2e_cross_signing_keys (
    user_id TEXT NOT NULL,
    key_type TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (user_id, key_type)
  ) WITHOUT ROWID;

  CREATE TABLE e2e_signatures (
    target_user_id TEXT NOT NULL,
    target_key_id TEXT NOT NULL,
    signer_user_id TEXT NOT NULL,
    signer_key_id TEXT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (target_user_id, target_key_id, signer_user_id, signer_key_id)
  ) WITHOUT ROWID;

  -- The latest change per user is enough: "changed in (since, upto]" only needs the newest position.
  CREATE TABLE device_list_changes (
    user_id TEXT PRIMARY KEY,
    stream INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX device_list_changes_stream ON device_list_changes(stream);

  CREATE TABLE to_device (
    id INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    stream INTEGER NOT NULL,
    sender TEXT NOT NULL,
    type TEXT NOT NULL,
    content TEXT NOT NULL
  );
  CREATE INDEX to_device_inbox ON to_device(user_id, device_id, stream);

  CREATE TABLE to_device_txns (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
  ) WITHOUT ROWID;

  -- Delivered to-device rows are deleted; this keeps their highest stream so a restart never reuses it.
  CREATE TABLE e2e_stream_mark (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    stream INTEGER NOT NULL
  );

  CREATE TABLE backup_versions (
    user_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    algorithm TEXT NOT NULL,
    auth_data TEXT NOT NULL,
    etag INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, version)
  ) WITHOUT ROWID;

  CREATE TABLE backup_keys (
    user_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    room_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    first_message_index INTEGER NOT NULL,
    forwarded_count INTEGER NOT NULL,
    is_verified INTEGER NOT NULL,
    session_data TEXT NOT NULL,
    PRIMARY KEY (user_id, version, room_id, session_id)
  ) WITHOUT ROWID;
  `,
  // 2: transaction IDs are scoped per endpoint path too (a txnId reused in another room is another request).
  // Recorded sends get the path of /send; a redaction retried across this upgrade may be sent twice (harmless).
  `
  CREATE TABLE event_txns_scoped (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, scope, txn_id)
  ) WITHOUT ROWID;
  INSERT INTO event_txns_scoped (user_id, device_id, scope, txn_id, event_id)
    SELECT t.user_id, t.device_id, 'send/' || e.room_id || '/' || e.type, t.txn_id, t.event_id
    FROM event_txns t JOIN events e ON e.event_id = t.event_id;
  DROP TABLE event_txns;
  ALTER TABLE event_txns_scoped RENAME TO event_txns;
  `,
  // N (relations): each event's content.m.relates_to (spec "Relationships") for /relations, /threads and the
  // bundled aggregations; a redacted event's row is deleted. Backfilled from the stored events.
  `
  CREATE TABLE event_relations (
    event_id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    relates_to TEXT NOT NULL,
    rel_type TEXT NOT NULL,
    aggregation_key TEXT,
    sender TEXT NOT NULL,
    type TEXT NOT NULL,
    stream INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX event_relations_parent ON event_relations(relates_to, rel_type, stream);
  CREATE INDEX event_relations_room ON event_relations(room_id, rel_type, relates_to);
  INSERT INTO event_relations (event_id, room_id, relates_to, rel_type, aggregation_key, sender, type, stream)
    SELECT event_id, room_id, json_extract(pdu, '$.content."m.relates_to".event_id'),
      json_extract(pdu, '$.content."m.relates_to".rel_type'),
      CASE WHEN json_extract(pdu, '$.content."m.relates_to".rel_type') = 'm.annotation'
        AND json_type(pdu, '$.content."m.relates_to".key') = 'text'
        THEN json_extract(pdu, '$.content."m.relates_to".key') END,
      sender, type, stream
    FROM events
    WHERE redacted_by IS NULL AND json_type(pdu, '$.content."m.relates_to".event_id') = 'text'
      AND json_type(pdu, '$.content."m.relates_to".rel_type') = 'text';
  `,
  // pushers and the notifications recorded for their users (spec "Push Notifications"). A pusher goes with the
  // device that created it (logout, device deletion, deactivation).
  `
  CREATE TABLE pushers (
    user_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    pushkey TEXT NOT NULL,
    device_id TEXT,
    kind TEXT NOT NULL,
    app_display_name TEXT NOT NULL,
    device_display_name TEXT NOT NULL,
    profile_tag TEXT,
    lang TEXT NOT NULL,
    data TEXT NOT NULL,
    pushkey_ts INTEGER NOT NULL,
    PRIMARY KEY (user_id, app_id, pushkey),
    FOREIGN KEY (user_id, device_id) REFERENCES devices(user_id, device_id) ON DELETE CASCADE
  ) WITHOUT ROWID;
  CREATE INDEX pushers_key ON pushers(app_id, pushkey);
  CREATE TABLE notifications (
    user_id TEXT NOT NULL,
    stream INTEGER NOT NULL,
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    ts INTEGER NOT NULL,
    actions TEXT NOT NULL,
    highlight INTEGER NOT NULL,
    profile_tag TEXT,
    PRIMARY KEY (user_id, stream)
  ) WITHOUT ROWID;
  `,
  // search: an FTS5 index of message bodies, room names and topics (rowid = the event's stream), kept by triggers
  // so every write path indexes in its own transaction; a redaction takes the event out. Backfilled here.
  `
  CREATE VIRTUAL TABLE event_search USING fts5(value, tokenize = 'unicode61 remove_diacritics 0');
  CREATE TRIGGER events_search_insert AFTER INSERT ON events
  WHEN new.type IN ('m.room.message', 'm.room.name', 'm.room.topic') AND new.redacted_by IS NULL
  BEGIN
    INSERT INTO event_search (rowid, value)
    SELECT new.stream, v FROM (SELECT json_extract(new.pdu, CASE new.type WHEN 'm.room.message' THEN '$.content.body'
      WHEN 'm.room.name' THEN '$.content.name' ELSE '$.content.topic' END) AS v) WHERE typeof(v) = 'text';
  END;
  CREATE TRIGGER events_search_redact AFTER UPDATE OF redacted_by ON events WHEN new.redacted_by IS NOT NULL
  BEGIN
    DELETE FROM event_search WHERE rowid = new.stream;
  END;
  CREATE TRIGGER events_search_delete AFTER DELETE ON events
  BEGIN
    DELETE FROM event_search WHERE rowid = old.stream;
  END;
  INSERT INTO event_search (rowid, value)
  SELECT stream, v FROM (SELECT stream, json_extract(pdu, CASE type WHEN 'm.room.message' THEN '$.content.body'
    WHEN 'm.room.name' THEN '$.content.name' ELSE '$.content.topic' END) AS v FROM events
    WHERE type IN ('m.room.message', 'm.room.name', 'm.room.topic') AND redacted_by IS NULL) WHERE typeof(v) = 'text';
  `,
  // misc: account locking and suspension (admin API v1.18), the user agent of a device's last request (whois),
  // and extended profile fields (v1.16: any key, JSON values; displayname/avatar_url stay on users).
  `
  ALTER TABLE users ADD COLUMN locked INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE users ADD COLUMN suspended INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE devices ADD COLUMN last_seen_user_agent TEXT;
  CREATE TABLE profile_fields (
    user_id TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (user_id, key)
  ) WITHOUT ROWID;
  `,
  // auth tokens: access tokens may expire and name the refresh token issued with them; refresh tokens chain to
  // their successor; short-lived device-less tokens (m.login.token, OpenID).
  `
  ALTER TABLE access_tokens ADD COLUMN expires_ts INTEGER;
  ALTER TABLE access_tokens ADD COLUMN refresh_hash TEXT;
  CREATE INDEX access_tokens_refresh ON access_tokens(refresh_hash) WHERE refresh_hash IS NOT NULL;
  CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    created_ts INTEGER NOT NULL,
    next_hash TEXT,
    FOREIGN KEY (user_id, device_id) REFERENCES devices(user_id, device_id) ON DELETE CASCADE
  ) WITHOUT ROWID;
  CREATE INDEX refresh_tokens_device ON refresh_tokens(user_id, device_id);
  CREATE INDEX refresh_tokens_next ON refresh_tokens(next_hash) WHERE next_hash IS NOT NULL;
  CREATE TABLE short_tokens (
    token_hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    expires_ts INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX short_tokens_expiry ON short_tokens(expires_ts);
  `,
  // timestamp_to_event: a room's events by origin_server_ts.
  `CREATE INDEX events_room_ts ON events(room_id, origin_server_ts);`,
  // media: IDs created by POST /_matrix/media/v1/create and not uploaded yet (spec "Content repository", async
  // uploads); the upload writes the media row and deletes this one in one transaction. media_uploader: a user's
  // bytes of the last day (matrix.media.maxUploadBytesPerUserPerDay) in one index range.
  `
  CREATE TABLE media_pending (
    media_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    created_ts INTEGER NOT NULL,
    expires_ts INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX media_pending_user ON media_pending(user_id, expires_ts);
  CREATE INDEX media_uploader ON media(uploader, created_ts);
  `,
  // moderation (Synapse-compatible admin API): content reports (event, room, user), shadow-banned users, blocked
  // rooms (joins refused), quarantined media (the uploader index came with the daily quota).
  `
  CREATE TABLE reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    received_ts INTEGER NOT NULL,
    user_id TEXT NOT NULL,
    room_id TEXT,
    event_id TEXT,
    target_user_id TEXT,
    reason TEXT,
    score INTEGER
  );
  CREATE INDEX reports_kind ON reports(kind, id);
  ALTER TABLE users ADD COLUMN shadow_banned INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE media ADD COLUMN quarantined_by TEXT;
  CREATE TABLE blocked_rooms (
    room_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL
  ) WITHOUT ROWID;
  `,
  // federation: other servers' signing keys as fetched (federation/key-fetcher.ts), with the signed response they
  // came in so the notary (POST /_matrix/key/v2/query) hands them on unchanged.
  `
  CREATE TABLE server_keys (
    server_name TEXT NOT NULL,
    key_id TEXT NOT NULL,
    public_key TEXT NOT NULL,
    valid_until_ts INTEGER NOT NULL,
    expired_ts INTEGER,
    fetched_ts INTEGER NOT NULL,
    response_json TEXT NOT NULL,
    PRIMARY KEY (server_name, key_id)
  ) WITHOUT ROWID;
  `,
  // room DAG (federation, docs/ARCHITECTURE.md "Room DAG"): prev_events and auth_events edges, forward extremities,
  // outliers (events stored without state: fetched auth events, rejected events), and per-event state as state
  // groups. A group is its prev group plus a delta (state_group_state rows), or a full snapshot (prev_id NULL);
  // chain counts the deltas above the last snapshot. Group ids are stream positions: +s the state after the state
  // event at s, -s a state before the event at s that is not its prev's group (resolved forks, backfill).
  // Auth edges are kept for state events and outliers only: auth chains pass through nothing else, and a message's
  // auth events are in its PDU (a third of a message's DAG write cost, measured).
  // Existing rooms are linear: edges and extremities are backfilled here from the PDUs; state groups lazily
  // (the first head load of a room snapshots its current state; events without a row read state_history).
  `
  CREATE TABLE event_edges (
    event_id TEXT NOT NULL,
    prev_id TEXT NOT NULL,
    PRIMARY KEY (event_id, prev_id)
  ) WITHOUT ROWID;
  CREATE INDEX event_edges_prev ON event_edges(prev_id);
  CREATE TABLE event_auth_edges (
    event_id TEXT NOT NULL,
    auth_id TEXT NOT NULL,
    PRIMARY KEY (event_id, auth_id)
  ) WITHOUT ROWID;
  CREATE TABLE forward_extremities (
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (room_id, event_id)
  ) WITHOUT ROWID;
  CREATE TABLE event_outliers (
    event_id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT,
    sender TEXT NOT NULL,
    origin_server_ts INTEGER NOT NULL,
    depth INTEGER NOT NULL,
    pdu TEXT NOT NULL,
    rejected TEXT
  ) WITHOUT ROWID;
  CREATE INDEX event_outliers_room ON event_outliers(room_id);
  CREATE TABLE state_groups (
    id INTEGER PRIMARY KEY,
    room_id TEXT NOT NULL,
    prev_id INTEGER,
    chain INTEGER NOT NULL
  );
  CREATE INDEX state_groups_room ON state_groups(room_id);
  CREATE TABLE state_group_state (
    group_id INTEGER NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (group_id, type, state_key)
  ) WITHOUT ROWID;
  -- The state groups before and after a timeline event, on its own row (no extra write): 0 is the empty state,
  -- NULL none recorded (events from before the DAG).
  ALTER TABLE events ADD COLUMN state_before INTEGER;
  ALTER TABLE events ADD COLUMN state_after INTEGER;
  INSERT OR IGNORE INTO event_edges (event_id, prev_id)
    SELECT e.event_id, j.value FROM events e, json_each(e.pdu, '$.prev_events') j
    WHERE json_type(e.pdu, '$.prev_events') = 'array' AND j.type = 'text';
  INSERT OR IGNORE INTO event_auth_edges (event_id, auth_id)
    SELECT e.event_id, j.value FROM events e, json_each(e.pdu, '$.auth_events') j
    WHERE e.state_key IS NOT NULL AND json_type(e.pdu, '$.auth_events') = 'array' AND j.type = 'text';
  INSERT INTO forward_extremities (room_id, event_id)
    SELECT room_id, event_id FROM events WHERE stream IN (SELECT max(stream) FROM events GROUP BY room_id);
  `,
  // federation: retry state per remote server (federation/sender.ts), so a restart does not hammer dead servers.
  `
  CREATE TABLE federation_destinations (
    destination TEXT PRIMARY KEY,
    last_success_ts INTEGER,
    failures INTEGER NOT NULL,
    retry_interval_ms INTEGER NOT NULL,
    next_retry_ts INTEGER NOT NULL
  ) WITHOUT ROWID;
  `,
  // federation: other servers' users' device lists (federation/device-lists.ts), one JSON body per user.
  `
  CREATE TABLE remote_device_lists (
    user_id TEXT PRIMARY KEY,
    stream_id INTEGER NOT NULL,
    body TEXT NOT NULL,
    updated_ts INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE device_list_outbound (
    user_id TEXT PRIMARY KEY,
    stream INTEGER NOT NULL
  ) WITHOUT ROWID;
  `,
  // federation: durable outgoing queues (federation/sender.ts): per destination and room, the newest local event owed
  // and the newest delivered (the catch-up reads the events between from the timeline); to-device EDUs until delivered.
  `
  CREATE TABLE federation_destination_rooms (
    destination TEXT NOT NULL,
    room_id TEXT NOT NULL,
    owed_stream INTEGER NOT NULL,
    sent_stream INTEGER NOT NULL,
    PRIMARY KEY (destination, room_id)
  ) WITHOUT ROWID;
  CREATE TABLE federation_outbox (
    destination TEXT NOT NULL,
    seq INTEGER NOT NULL,
    edu TEXT NOT NULL,
    PRIMARY KEY (destination, seq)
  ) WITHOUT ROWID;
  `,
  // federation joins: the room state a send_join answer carries is stored as state-only events (a stream
  // position, state_history/current_state/memberships rows, but no place in any timeline read), as Synapse keeps
  // it out of the timeline.
  `
  ALTER TABLE events ADD COLUMN state_only INTEGER NOT NULL DEFAULT 0;
  `,
  // federation partial-state joins (MSC3706, federation/partial-state.ts): a room joined with members omitted, until
  // the background resync has its full state; the servers to ask, so a restart resumes it.
  `
  CREATE TABLE partial_state_rooms (
    room_id TEXT PRIMARY KEY,
    join_event_id TEXT NOT NULL,
    servers TEXT NOT NULL
  );
  `,
  // URL previews (service/url-preview.ts): the answer per URL until it expires, shared by every worker and kept over
  // restarts (Synapse's local_media_repository_url_cache). Keyed by the URL's SHA-256 (a URL has no length limit, a
  // PostgreSQL index entry has); og: the answer's JSON; url_previews_expiry: the purge of expired rows.
  `
  CREATE TABLE url_previews (
    url_hash TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    og TEXT NOT NULL,
    media_id TEXT,
    download_ts INTEGER NOT NULL,
    expires_ts INTEGER NOT NULL
  );
  CREATE INDEX url_previews_expiry ON url_previews(expires_ts);
  `,
];
