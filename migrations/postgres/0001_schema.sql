-- Herald's schema on PostgreSQL: the same tables, columns and meanings as the SQLite
-- migrations (migrations/sqlite/0001–0008), in PostgreSQL's types. Conventions:
-- - ids are prefixed text ("shp_…", "dlv_…", ULIDs) compared byte by byte (COLLATE "C"):
--   keyset pagination and retention's "created before" ranges rely on ids sorting by time;
-- - timestamps are bigint unix milliseconds in UTC, as on SQLite: the engine's clock
--   arithmetic (leases, due times) is the same SQL on both stores;
-- - flags are booleans; settings read as typed JSON are jsonb; a payload is text, kept
--   byte for byte as it was received (jsonb would reorder its keys);
-- - migrations are append-only: never edit one that has been released.

CREATE TABLE shops (
    id                     TEXT COLLATE "C" PRIMARY KEY,
    name                   TEXT NOT NULL,
    webhooks_enabled       BOOLEAN NOT NULL DEFAULT FALSE,
    require_https          BOOLEAN NOT NULL DEFAULT FALSE,
    failed_retention_hours BIGINT NOT NULL DEFAULT 168,
    log_retention_days     BIGINT NOT NULL DEFAULT 30,
    default_retry          JSONB NOT NULL DEFAULT '{"policy":"standard"}',
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL
);

CREATE TABLE users (
    id              TEXT COLLATE "C" PRIMARY KEY,
    email           TEXT NOT NULL,
    password_hash   TEXT NOT NULL,
    is_operator     BOOLEAN NOT NULL DEFAULT FALSE,
    session_version BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
-- Emails are unique whatever their case (SQLite: COLLATE NOCASE).
CREATE UNIQUE INDEX users_email ON users (lower(email));

-- A user's role in one shop. Operators need no membership: they see every shop.
CREATE TABLE memberships (
    shop_id    TEXT COLLATE "C" NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    user_id    TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('owner', 'viewer')),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (shop_id, user_id)
);
CREATE INDEX memberships_user ON memberships(user_id);

-- API keys are stored as the SHA-256 of the key; the key itself is shown once.
CREATE TABLE api_keys (
    id           TEXT COLLATE "C" PRIMARY KEY,
    shop_id      TEXT COLLATE "C" NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    key_prefix   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX api_keys_shop ON api_keys(shop_id);

CREATE TABLE endpoints (
    id                      TEXT COLLATE "C" PRIMARY KEY,
    shop_id                 TEXT COLLATE "C" NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    url                     TEXT NOT NULL,
    description             TEXT NOT NULL DEFAULT '',
    enabled                 BOOLEAN NOT NULL DEFAULT TRUE,
    event_types             JSONB NOT NULL DEFAULT '[]',
    channels                JSONB NOT NULL DEFAULT '[]',
    basic_auth_username     TEXT,
    basic_auth_password_enc TEXT,
    headers                 JSONB NOT NULL DEFAULT '{}',
    content_type            TEXT NOT NULL DEFAULT 'application/json',
    template                TEXT,
    retry                   JSONB NOT NULL DEFAULT '{"policy":"standard"}',
    timeout_ms              BIGINT NOT NULL DEFAULT 5000,
    priority                BIGINT NOT NULL DEFAULT 1,   -- 0 high, 1 normal, 2 low
    unique_pending          BOOLEAN NOT NULL DEFAULT FALSE,
    disable_on_status       JSONB NOT NULL DEFAULT '[410]',
    unsubscribe_phrase      TEXT DEFAULT 'please unsubscribe me',
    unsubscribe_action      TEXT NOT NULL DEFAULT 'disable' CHECK (unsubscribe_action IN ('disable', 'delete')),
    disable_after_days      BIGINT DEFAULT 5,
    client_certificate_enc  TEXT,
    rate_limit_per_second   BIGINT,
    secret_enc              TEXT NOT NULL,
    previous_secret_enc     TEXT,
    previous_secret_until   BIGINT,
    disabled_reason         TEXT,
    failing_since           BIGINT,
    last_attempt_at         BIGINT,
    deleted_at              BIGINT,
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL
);
CREATE INDEX endpoints_shop ON endpoints(shop_id);

-- A shop's own event types and its changes to the shipped ones; the shipped catalog itself is
-- compiled into the binary.
CREATE TABLE event_types (
    shop_id     TEXT COLLATE "C" NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    name        TEXT COLLATE "C" NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    sample      JSONB NOT NULL DEFAULT '{}',
    schema      JSONB,
    source      TEXT NOT NULL DEFAULT 'custom' CHECK (source IN ('custom', 'discovered', 'edited')),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (shop_id, name)
);

CREATE TABLE events (
    shop_id    TEXT COLLATE "C" NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    id         TEXT COLLATE "C" NOT NULL,
    type       TEXT COLLATE "C" NOT NULL,
    channels   JSONB NOT NULL DEFAULT '[]',
    data       TEXT NOT NULL,
    entity_key TEXT,
    priority   BIGINT,
    deliveries TEXT NOT NULL DEFAULT '[]',   -- the delivery ids created when it was published
    created_at BIGINT NOT NULL,
    PRIMARY KEY (shop_id, id)
);
CREATE INDEX events_created ON events(shop_id, created_at);

-- The queue. Nodes claim due rows (pending/retrying, next_attempt_at <= now) with
-- FOR UPDATE SKIP LOCKED and a lease naming its owner; a lease that runs out makes the row
-- claimable again, by any node.
CREATE TABLE deliveries (
    id               TEXT COLLATE "C" PRIMARY KEY,
    shop_id          TEXT COLLATE "C" NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    event_id         TEXT COLLATE "C" NOT NULL,
    endpoint_id      TEXT COLLATE "C" NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    event_type       TEXT COLLATE "C" NOT NULL,
    channels         JSONB NOT NULL DEFAULT '[]',
    entity_key       TEXT,
    status           TEXT COLLATE "C" NOT NULL CHECK (status IN ('pending', 'delivering', 'retrying', 'succeeded', 'failed', 'cancelled', 'held')),
    priority         BIGINT NOT NULL DEFAULT 1,
    attempt_count    BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT,
    lease_until      BIGINT,
    lease_owner      TEXT,
    last_status_code BIGINT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX deliveries_leased ON deliveries(lease_until) WHERE status = 'delivering';
CREATE INDEX deliveries_shop ON deliveries(shop_id, id);
CREATE INDEX deliveries_shop_status ON deliveries(shop_id, status, id);
CREATE INDEX deliveries_event ON deliveries(shop_id, event_id);
CREATE INDEX deliveries_endpoint ON deliveries(endpoint_id);
CREATE INDEX deliveries_endpoint_due ON deliveries(endpoint_id, priority, next_attempt_at)
    WHERE status IN ('pending', 'retrying');
CREATE INDEX deliveries_waiting ON deliveries(next_attempt_at) WHERE status IN ('pending', 'retrying');
CREATE INDEX deliveries_entity ON deliveries(endpoint_id, entity_key)
    WHERE entity_key IS NOT NULL AND status IN ('pending', 'retrying', 'held');

CREATE TABLE attempts (
    id               BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    shop_id          TEXT COLLATE "C" NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    delivery_id      TEXT COLLATE "C" NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    endpoint_id      TEXT COLLATE "C" NOT NULL,
    number           BIGINT NOT NULL,
    status_code      BIGINT,
    error_kind       TEXT,
    error_message    TEXT,
    duration_ms      BIGINT NOT NULL,
    request_headers  TEXT NOT NULL,
    request_body     TEXT NOT NULL,
    response_headers TEXT,
    response_body    TEXT,
    at               BIGINT NOT NULL
);
CREATE INDEX attempts_delivery ON attempts(delivery_id, number);
CREATE INDEX attempts_shop ON attempts(shop_id, id);

CREATE TABLE alerts (
    id              TEXT COLLATE "C" PRIMARY KEY,
    shop_id         TEXT COLLATE "C" NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    kind            TEXT NOT NULL,
    endpoint_id     TEXT,
    delivery_id     TEXT,
    message         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    acknowledged_at BIGINT
);
CREATE INDEX alerts_shop ON alerts(shop_id, created_at);

-- Sign-in sessions, in the shape tower-sessions' PostgreSQL store reads and writes; created
-- here, under the migration lock, rather than by each node at start.
CREATE TABLE sessions (
    id          TEXT PRIMARY KEY NOT NULL,
    data        BYTEA NOT NULL,
    expiry_date TIMESTAMPTZ NOT NULL
);

-- Nodes: every `herald serve` process writes a heartbeat here; the operator's Nodes page lists
-- them with what each holds (deliveries leased under its lease prefix).
CREATE TABLE nodes (
    id           TEXT COLLATE "C" PRIMARY KEY,
    lease_prefix TEXT COLLATE "C" NOT NULL,
    version      TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    stopped_at   BIGINT,
    -- Live activity streams open on the node: others relay their activity to it only then.
    listeners    BIGINT NOT NULL DEFAULT 0
);

-- An endpoint's rate limit, shared by every node: the time its next send may start (a
-- virtual schedule, GCRA). A claim reserves its deliveries' send slots here, so nodes
-- together never send faster than the limit.
CREATE TABLE rate_slots (
    endpoint_id TEXT COLLATE "C" PRIMARY KEY REFERENCES endpoints(id) ON DELETE CASCADE,
    next_at     BIGINT NOT NULL
);
