/**
 * PostgreSQL schema as versioned migrations (same tables and semantics as sqlite/schema.ts). Tables live in
 * their own schema (search_path is set per connection), so the homeserver can share a database. Identifier
 * columns use the "C" collation: byte order like SQLite, and cheaper comparisons than a locale.
 * JSON is kept in text columns, not jsonb: jsonb rejects "\u0000", which Matrix content may carry.
 */
const T = 'TEXT COLLATE "C"';
/**
 * events.pdu (alias e) as json. PostgreSQL refuses to read a string holding \u0000 out of json, so that escape is
 * rewritten to \u0020 first: same length and backslash, so the JSON stays valid and only such content changes.
 */
const PDU_JSON = "replace(e.pdu, '\\u0000', '\\u0020')::json";

export const MIGRATIONS: string[] = [
  // 1: initial schema
  `
  CREATE TABLE users (
    user_id ${T} PRIMARY KEY,
    password_hash TEXT,
    created_ts BIGINT NOT NULL,
    admin BOOLEAN NOT NULL DEFAULT false,
    deactivated BOOLEAN NOT NULL DEFAULT false,
    is_guest BOOLEAN NOT NULL DEFAULT false,
    displayname TEXT,
    avatar_url TEXT
  );

  CREATE TABLE devices (
    user_id ${T} NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    device_id ${T} NOT NULL,
    display_name TEXT,
    created_ts BIGINT NOT NULL,
    last_seen_ts BIGINT,
    last_seen_ip TEXT,
    PRIMARY KEY (user_id, device_id)
  );

  CREATE TABLE access_tokens (
    token_hash ${T} PRIMARY KEY,
    user_id ${T} NOT NULL,
    device_id ${T} NOT NULL,
    created_ts BIGINT NOT NULL,
    FOREIGN KEY (user_id, device_id) REFERENCES devices(user_id, device_id) ON DELETE CASCADE
  );
  CREATE INDEX access_tokens_device ON access_tokens(user_id, device_id);

  CREATE TABLE registration_tokens (
    token ${T} PRIMARY KEY,
    uses_allowed INTEGER,
    pending INTEGER NOT NULL DEFAULT 0,
    completed INTEGER NOT NULL DEFAULT 0,
    expiry_ts BIGINT
  );

  CREATE TABLE rooms (
    room_id ${T} PRIMARY KEY,
    version TEXT NOT NULL,
    creator ${T} NOT NULL,
    created_ts BIGINT NOT NULL,
    is_public BOOLEAN NOT NULL DEFAULT false
  );

  CREATE TABLE events (
    stream BIGINT PRIMARY KEY,
    event_id ${T} NOT NULL UNIQUE,
    room_id ${T} NOT NULL REFERENCES rooms(room_id),
    type ${T} NOT NULL,
    state_key ${T},
    sender ${T} NOT NULL,
    origin_server_ts BIGINT NOT NULL,
    depth BIGINT NOT NULL,
    contains_url BOOLEAN NOT NULL DEFAULT false,
    pdu TEXT NOT NULL,
    redacted_by ${T},
    txn_device_id ${T},
    txn_id ${T}
  );
  CREATE INDEX events_room_stream ON events(room_id, stream);

  -- Every state change, so state at any stream position is one indexed query.
  CREATE TABLE state_history (
    room_id ${T} NOT NULL,
    type ${T} NOT NULL,
    state_key ${T} NOT NULL,
    stream BIGINT NOT NULL,
    event_id ${T} NOT NULL,
    PRIMARY KEY (room_id, type, state_key, stream)
  );

  CREATE TABLE current_state (
    room_id ${T} NOT NULL,
    type ${T} NOT NULL,
    state_key ${T} NOT NULL,
    stream BIGINT NOT NULL,
    event_id ${T} NOT NULL,
    PRIMARY KEY (room_id, type, state_key)
  );

  CREATE TABLE memberships (
    room_id ${T} NOT NULL,
    user_id ${T} NOT NULL,
    membership ${T} NOT NULL,
    event_id ${T} NOT NULL,
    stream BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id)
  );
  CREATE INDEX memberships_user ON memberships(user_id);

  CREATE TABLE event_txns (
    user_id ${T} NOT NULL,
    device_id ${T} NOT NULL,
    txn_id ${T} NOT NULL,
    event_id ${T} NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
  );

  CREATE TABLE room_aliases (
    alias ${T} PRIMARY KEY,
    room_id ${T} NOT NULL,
    creator ${T} NOT NULL
  );
  CREATE INDEX room_aliases_room ON room_aliases(room_id);

  CREATE TABLE account_data (
    user_id ${T} NOT NULL,
    room_id ${T} NOT NULL,
    type ${T} NOT NULL,
    content TEXT NOT NULL,
    stream BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id, type)
  );
  CREATE INDEX account_data_user_stream ON account_data(user_id, stream);

  CREATE TABLE receipts (
    room_id ${T} NOT NULL,
    user_id ${T} NOT NULL,
    type ${T} NOT NULL,
    thread_id ${T} NOT NULL,
    event_id ${T} NOT NULL,
    ts BIGINT NOT NULL,
    stream BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id, type, thread_id)
  );
  CREATE INDEX receipts_room_stream ON receipts(room_id, stream);

  CREATE TABLE presence (
    user_id ${T} PRIMARY KEY,
    presence TEXT NOT NULL,
    status_msg TEXT,
    last_active_ts BIGINT NOT NULL,
    stream BIGINT NOT NULL
  );

  CREATE TABLE filters (
    filter_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id ${T} NOT NULL,
    filter TEXT NOT NULL
  );

  CREATE TABLE media (
    media_id ${T} PRIMARY KEY,
    uploader ${T} NOT NULL,
    content_type TEXT NOT NULL,
    filename TEXT,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    created_ts BIGINT NOT NULL
  );
  `,
  // 2: end-to-end encryption (store/keys-types.ts)
  `
  CREATE TABLE e2e_device_keys (
    user_id ${T} NOT NULL,
    device_id ${T} NOT NULL,
    keys TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id)
  );

  -- key_id is the full "<algorithm>:<id>"; (algorithm, key_id) order makes "first key of an algorithm" a seek.
  CREATE TABLE e2e_one_time_keys (
    user_id ${T} NOT NULL,
    device_id ${T} NOT NULL,
    algorithm ${T} NOT NULL,
    key_id ${T} NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, algorithm, key_id)
  );

  CREATE TABLE e2e_fallback_keys (
    user_id ${T} NOT NULL,
    device_id ${T} NOT NULL,
    algorithm ${T} NOT NULL,
    key_id ${T} NOT NULL,
    key TEXT NOT NULL,
    used BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (user_id, device_id, algorithm)
  );

  CREATE TABLE e2e_cross_signing_keys (
    user_id ${T} NOT NULL,
    key_type ${T} NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (user_id, key_type)
  );

  CREATE TABLE e2e_signatures (
    target_user_id ${T} NOT NULL,
    target_key_id ${T} NOT NULL,
    signer_user_id ${T} NOT NULL,
    signer_key_id ${T} NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (target_user_id, target_key_id, signer_user_id, signer_key_id)
  );

  -- The latest change per user is enough: "changed in (since, upto]" only needs the newest position.
  CREATE TABLE device_list_changes (
    user_id ${T} PRIMARY KEY,
    stream BIGINT NOT NULL
  );
  CREATE INDEX device_list_changes_stream ON device_list_changes(stream);

  CREATE TABLE to_device (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id ${T} NOT NULL,
    device_id ${T} NOT NULL,
    stream BIGINT NOT NULL,
    sender ${T} NOT NULL,
    type TEXT NOT NULL,
    content TEXT NOT NULL
  );
  CREATE INDEX to_device_inbox ON to_device(user_id, device_id, stream);

  CREATE TABLE to_device_txns (
    user_id ${T} NOT NULL,
    device_id ${T} NOT NULL,
    txn_id ${T} NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
  );

  -- Delivered to-device rows are deleted; this keeps their highest stream so a restart never reuses it.
  CREATE TABLE e2e_stream_mark (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    stream BIGINT NOT NULL
  );

  CREATE TABLE backup_versions (
    user_id ${T} NOT NULL,
    version BIGINT NOT NULL,
    algorithm ${T} NOT NULL,
    auth_data TEXT NOT NULL,
    etag BIGINT NOT NULL DEFAULT 0,
    deleted BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (user_id, version)
  );

  CREATE TABLE backup_keys (
    user_id ${T} NOT NULL,
    version BIGINT NOT NULL,
    room_id ${T} NOT NULL,
    session_id ${T} NOT NULL,
    first_message_index INTEGER NOT NULL,
    forwarded_count INTEGER NOT NULL,
    is_verified BOOLEAN NOT NULL,
    session_data TEXT NOT NULL,
    PRIMARY KEY (user_id, version, room_id, session_id)
  );
  `,
  // 2: transaction IDs are scoped per endpoint path too (a txnId reused in another room is another request).
  // Recorded sends get the path of /send; a redaction retried across this upgrade may be sent twice (harmless).
  `
  ALTER TABLE event_txns ADD COLUMN scope ${T} NOT NULL DEFAULT '';
  UPDATE event_txns t SET scope = 'send/' || e.room_id || '/' || e.type FROM events e WHERE e.event_id = t.event_id;
  ALTER TABLE event_txns DROP CONSTRAINT event_txns_pkey;
  ALTER TABLE event_txns ADD PRIMARY KEY (user_id, device_id, scope, txn_id);
  ALTER TABLE event_txns ALTER COLUMN scope DROP DEFAULT;
  `,
  // N (relations): each event's content.m.relates_to (spec "Relationships") for /relations, /threads and the
  // bundled aggregations; a redacted event's row is deleted. Backfilled from the stored events.
  `
  CREATE TABLE event_relations (
    event_id ${T} PRIMARY KEY,
    room_id ${T} NOT NULL,
    relates_to ${T} NOT NULL,
    rel_type ${T} NOT NULL,
    aggregation_key TEXT,
    sender ${T} NOT NULL,
    type ${T} NOT NULL,
    stream BIGINT NOT NULL
  );
  CREATE INDEX event_relations_parent ON event_relations(relates_to, rel_type, stream);
  CREATE INDEX event_relations_room ON event_relations(room_id, rel_type, relates_to);
  INSERT INTO event_relations (event_id, room_id, relates_to, rel_type, aggregation_key, sender, type, stream)
    SELECT event_id, room_id, r->>'event_id', r->>'rel_type',
      CASE WHEN r->>'rel_type' = 'm.annotation' AND jsonb_typeof(r->'key') = 'string' THEN r->>'key' END,
      sender, type, stream
    FROM (SELECT e.*, (e.pdu::jsonb)->'content'->'m.relates_to' AS r FROM events e WHERE e.redacted_by IS NULL) x
    WHERE jsonb_typeof(r->'event_id') = 'string' AND jsonb_typeof(r->'rel_type') = 'string';
  `,
  // pushers and the notifications recorded for their users (spec "Push Notifications"). A pusher goes with the
  // device that created it (logout, device deletion, deactivation).
  `
  CREATE TABLE pushers (
    user_id ${T} NOT NULL,
    app_id ${T} NOT NULL,
    pushkey ${T} NOT NULL,
    device_id ${T},
    kind ${T} NOT NULL,
    app_display_name TEXT NOT NULL,
    device_display_name TEXT NOT NULL,
    profile_tag TEXT,
    lang TEXT NOT NULL,
    data TEXT NOT NULL,
    pushkey_ts BIGINT NOT NULL,
    PRIMARY KEY (user_id, app_id, pushkey),
    FOREIGN KEY (user_id, device_id) REFERENCES devices(user_id, device_id) ON DELETE CASCADE
  );
  CREATE INDEX pushers_key ON pushers(app_id, pushkey);
  CREATE TABLE notifications (
    user_id ${T} NOT NULL,
    stream BIGINT NOT NULL,
    room_id ${T} NOT NULL,
    event_id ${T} NOT NULL,
    ts BIGINT NOT NULL,
    actions TEXT NOT NULL,
    highlight BOOLEAN NOT NULL,
    profile_tag TEXT,
    PRIMARY KEY (user_id, stream)
  );
  `,
  // search: the tsvector of each message body, room name and topic in event_search (GIN-indexed, ranked without
  // recomputing it), kept by a trigger on events so every write path (the one-statement write, batches) indexes in
  // its own transaction; a redaction takes the event out. Backfilled here. The text is read from the PDU as json,
  // and a field PostgreSQL text cannot hold (\u0000, a lone surrogate) is left unindexed instead of failing the write.
  `
  CREATE TABLE event_search (
    stream BIGINT PRIMARY KEY REFERENCES events(stream) ON DELETE CASCADE,
    vector tsvector NOT NULL
  );
  CREATE INDEX event_search_vector ON event_search USING gin (vector);
  CREATE FUNCTION event_search_text(event_type text, pdu text) RETURNS text
  LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $fn$
  DECLARE
    key text := CASE event_type WHEN 'm.room.message' THEN 'body' WHEN 'm.room.name' THEN 'name'
      WHEN 'm.room.topic' THEN 'topic' END;
    v text;
  BEGIN
    IF key IS NULL THEN
      RETURN NULL;
    END IF;
    IF strpos(pdu, '\\u') = 0 THEN
      RETURN CASE WHEN json_typeof(pdu::json->'content'->key) = 'string' THEN pdu::json->'content'->>key END;
    END IF;
    BEGIN
      v := CASE WHEN json_typeof(pdu::json->'content'->key) = 'string' THEN pdu::json->'content'->>key END;
    EXCEPTION WHEN OTHERS THEN
      v := NULL;
    END;
    RETURN v;
  END
  $fn$;
  CREATE FUNCTION event_search_index() RETURNS trigger LANGUAGE plpgsql AS $fn$
  BEGIN
    IF TG_OP = 'INSERT' THEN
      IF NEW.redacted_by IS NULL AND NEW.type IN ('m.room.message', 'm.room.name', 'm.room.topic') THEN
        INSERT INTO event_search (stream, vector)
        SELECT NEW.stream, to_tsvector('simple'::regconfig, t) FROM event_search_text(NEW.type, NEW.pdu) t
        WHERE t IS NOT NULL;
      END IF;
    ELSIF NEW.redacted_by IS NOT NULL THEN
      DELETE FROM event_search WHERE stream = NEW.stream;
    END IF;
    RETURN NULL;
  END
  $fn$;
  CREATE TRIGGER events_search AFTER INSERT OR UPDATE OF redacted_by ON events
  FOR EACH ROW EXECUTE FUNCTION event_search_index();
  INSERT INTO event_search (stream, vector)
  SELECT stream, to_tsvector('simple'::regconfig, t) FROM (
    SELECT stream, event_search_text(type, pdu) AS t FROM events
    WHERE redacted_by IS NULL AND type IN ('m.room.message', 'm.room.name', 'm.room.topic')) x
  WHERE t IS NOT NULL;
  `,
  // misc: account locking and suspension (admin API v1.18), the user agent of a device's last request (whois),
  // and extended profile fields (v1.16: any key, JSON values as text; displayname/avatar_url stay on users).
  `
  ALTER TABLE users ADD COLUMN locked BOOLEAN NOT NULL DEFAULT false;
  ALTER TABLE users ADD COLUMN suspended BOOLEAN NOT NULL DEFAULT false;
  ALTER TABLE devices ADD COLUMN last_seen_user_agent TEXT;
  CREATE TABLE profile_fields (
    user_id ${T} NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    key ${T} NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (user_id, key)
  );
  `,
  // auth tokens: access tokens may expire and name the refresh token issued with them; refresh tokens chain to
  // their successor; short-lived device-less tokens (m.login.token, OpenID).
  `
  ALTER TABLE access_tokens ADD COLUMN expires_ts BIGINT;
  ALTER TABLE access_tokens ADD COLUMN refresh_hash ${T};
  CREATE INDEX access_tokens_refresh ON access_tokens(refresh_hash) WHERE refresh_hash IS NOT NULL;
  CREATE TABLE refresh_tokens (
    token_hash ${T} PRIMARY KEY,
    user_id ${T} NOT NULL,
    device_id ${T} NOT NULL,
    created_ts BIGINT NOT NULL,
    next_hash ${T},
    FOREIGN KEY (user_id, device_id) REFERENCES devices(user_id, device_id) ON DELETE CASCADE
  );
  CREATE INDEX refresh_tokens_device ON refresh_tokens(user_id, device_id);
  CREATE INDEX refresh_tokens_next ON refresh_tokens(next_hash) WHERE next_hash IS NOT NULL;
  CREATE TABLE short_tokens (
    token_hash ${T} PRIMARY KEY,
    kind ${T} NOT NULL,
    user_id ${T} NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    expires_ts BIGINT NOT NULL
  );
  CREATE INDEX short_tokens_expiry ON short_tokens(expires_ts);
  `,
  // timestamp_to_event: a room's events by origin_server_ts.
  `CREATE INDEX events_room_ts ON events(room_id, origin_server_ts);`,
  // media: IDs created by POST /_matrix/media/v1/create and not uploaded yet (spec "Content repository", async
  // uploads); the upload writes the media row and deletes this one in one transaction. media_uploader: a user's
  // bytes of the last day (matrix.media.maxUploadBytesPerUserPerDay) in one index range.
  `
  CREATE TABLE media_pending (
    media_id ${T} PRIMARY KEY,
    user_id ${T} NOT NULL,
    created_ts BIGINT NOT NULL,
    expires_ts BIGINT NOT NULL
  );
  CREATE INDEX media_pending_user ON media_pending(user_id, expires_ts);
  CREATE INDEX media_uploader ON media(uploader, created_ts);
  `,
  // moderation (Synapse-compatible admin API): content reports (event, room, user), shadow-banned users, blocked
  // rooms (joins refused), quarantined media (the uploader index came with the daily quota).
  `
  CREATE TABLE reports (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    received_ts BIGINT NOT NULL,
    user_id ${T} NOT NULL,
    room_id ${T},
    event_id ${T},
    target_user_id ${T},
    reason TEXT,
    score INTEGER
  );
  CREATE INDEX reports_kind ON reports(kind, id);
  ALTER TABLE users ADD COLUMN shadow_banned BOOLEAN NOT NULL DEFAULT false;
  ALTER TABLE media ADD COLUMN quarantined_by ${T};
  CREATE TABLE blocked_rooms (
    room_id ${T} PRIMARY KEY,
    user_id ${T} NOT NULL
  );
  `,
  // federation: other servers' signing keys as fetched (federation/key-fetcher.ts), with the signed response they
  // came in so the notary (POST /_matrix/key/v2/query) hands them on unchanged.
  `
  CREATE TABLE server_keys (
    server_name ${T} NOT NULL,
    key_id ${T} NOT NULL,
    public_key ${T} NOT NULL,
    valid_until_ts BIGINT NOT NULL,
    expired_ts BIGINT,
    fetched_ts BIGINT NOT NULL,
    response_json ${T} NOT NULL,
    PRIMARY KEY (server_name, key_id)
  );
  `,
  // room DAG: see sqlite/schema.ts (same tables, same backfill).
  `
  CREATE TABLE event_edges (
    event_id ${T} NOT NULL,
    prev_id ${T} NOT NULL,
    PRIMARY KEY (event_id, prev_id)
  );
  CREATE INDEX event_edges_prev ON event_edges(prev_id);
  CREATE TABLE event_auth_edges (
    event_id ${T} NOT NULL,
    auth_id ${T} NOT NULL,
    PRIMARY KEY (event_id, auth_id)
  );
  CREATE TABLE forward_extremities (
    room_id ${T} NOT NULL,
    event_id ${T} NOT NULL,
    PRIMARY KEY (room_id, event_id)
  );
  CREATE TABLE event_outliers (
    event_id ${T} PRIMARY KEY,
    room_id ${T} NOT NULL,
    type ${T} NOT NULL,
    state_key ${T},
    sender ${T} NOT NULL,
    origin_server_ts BIGINT NOT NULL,
    depth BIGINT NOT NULL,
    pdu TEXT NOT NULL,
    rejected TEXT
  );
  CREATE INDEX event_outliers_room ON event_outliers(room_id);
  CREATE TABLE state_groups (
    id BIGINT PRIMARY KEY,
    room_id ${T} NOT NULL,
    prev_id BIGINT,
    chain INTEGER NOT NULL
  );
  CREATE INDEX state_groups_room ON state_groups(room_id);
  CREATE TABLE state_group_state (
    group_id BIGINT NOT NULL,
    type ${T} NOT NULL,
    state_key ${T} NOT NULL,
    event_id ${T} NOT NULL,
    PRIMARY KEY (group_id, type, state_key)
  );
  ALTER TABLE events ADD COLUMN state_before BIGINT;
  ALTER TABLE events ADD COLUMN state_after BIGINT;
  INSERT INTO event_edges (event_id, prev_id)
    SELECT DISTINCT e.event_id, j.v #>> '{}' FROM events e,
      json_array_elements(CASE WHEN json_typeof(${PDU_JSON} -> 'prev_events') = 'array'
        THEN ${PDU_JSON} -> 'prev_events' ELSE '[]'::json END) j(v)
    WHERE json_typeof(j.v) = 'string'
    ON CONFLICT DO NOTHING;
  INSERT INTO event_auth_edges (event_id, auth_id)
    SELECT DISTINCT e.event_id, j.v #>> '{}' FROM events e,
      json_array_elements(CASE WHEN json_typeof(${PDU_JSON} -> 'auth_events') = 'array'
        THEN ${PDU_JSON} -> 'auth_events' ELSE '[]'::json END) j(v)
    WHERE e.state_key IS NOT NULL AND json_typeof(j.v) = 'string'
    ON CONFLICT DO NOTHING;
  INSERT INTO forward_extremities (room_id, event_id)
    SELECT room_id, event_id FROM events WHERE stream IN (SELECT max(stream) FROM events GROUP BY room_id);
  `,
  // federation: retry state per remote server (federation/sender.ts), so a restart does not hammer dead servers.
  `
  CREATE TABLE federation_destinations (
    destination ${T} PRIMARY KEY,
    last_success_ts BIGINT,
    failures INTEGER NOT NULL,
    retry_interval_ms BIGINT NOT NULL,
    next_retry_ts BIGINT NOT NULL
  );
  `,
  // federation: other servers' users' device lists (federation/device-lists.ts), one JSON body per user.
  `
  CREATE TABLE remote_device_lists (
    user_id ${T} PRIMARY KEY,
    stream_id BIGINT NOT NULL,
    body TEXT NOT NULL,
    updated_ts BIGINT NOT NULL
  );
  CREATE TABLE device_list_outbound (
    user_id ${T} PRIMARY KEY,
    stream BIGINT NOT NULL
  );
  `,
  // federation: durable outgoing queues (federation/sender.ts): per destination and room, the newest local event owed
  // and the newest delivered (the catch-up reads the events between from the timeline); to-device EDUs until delivered.
  `
  CREATE TABLE federation_destination_rooms (
    destination ${T} NOT NULL,
    room_id ${T} NOT NULL,
    owed_stream BIGINT NOT NULL,
    sent_stream BIGINT NOT NULL,
    PRIMARY KEY (destination, room_id)
  );
  CREATE TABLE federation_outbox (
    destination ${T} NOT NULL,
    seq BIGINT NOT NULL,
    edu TEXT NOT NULL,
    PRIMARY KEY (destination, seq)
  );
  `,
  // federation joins: the room state a send_join answer carries is stored as state-only events (a stream
  // position, state_history/current_state/memberships rows, but no place in any timeline read), as Synapse keeps
  // it out of the timeline.
  `
  ALTER TABLE events ADD COLUMN state_only SMALLINT NOT NULL DEFAULT 0;
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
  // scale-out (cluster/positions.ts): the sequence every worker takes stream positions from (created at cluster
  // start until now); ami_stream_head, the committed head of the first version (one commit at a time cluster-wide),
  // is replaced by per-writer safe positions and goes. One process never uses either (its own counter).
  // ami_stream_writers: each live worker's loopback address for sends forwarded to the writer of their room
  // (cluster/routing.ts); a row whose slot lock nobody holds is stale.
  `
  CREATE SEQUENCE IF NOT EXISTS ami_stream_seq;
  DROP TABLE IF EXISTS ami_stream_head;
  CREATE TABLE ami_stream_writers (
    slot INTEGER PRIMARY KEY,
    url TEXT NOT NULL,
    secret TEXT NOT NULL
  );
  `,
  // URL previews (service/url-preview.ts): the answer per URL until it expires, shared by every worker and kept over
  // restarts (Synapse's local_media_repository_url_cache). Keyed by the URL's SHA-256 (a URL has no length limit, a
  // PostgreSQL index entry has); og: the answer's JSON; url_previews_expiry: the purge of expired rows.
  `
  CREATE TABLE url_previews (
    url_hash ${T} PRIMARY KEY,
    url TEXT NOT NULL,
    og TEXT NOT NULL,
    media_id TEXT,
    download_ts BIGINT NOT NULL,
    expires_ts BIGINT NOT NULL
  );
  CREATE INDEX url_previews_expiry ON url_previews(expires_ts);
  `,
];
