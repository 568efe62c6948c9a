-- The delivery engine: endpoints, the event catalog, events, the deliveries queue, attempts
-- and alerts. JSON columns hold small lists and maps (channels, headers, retry policy).

ALTER TABLE shops ADD COLUMN failed_retention_hours INTEGER NOT NULL DEFAULT 168;
ALTER TABLE shops ADD COLUMN log_retention_days INTEGER NOT NULL DEFAULT 30;
ALTER TABLE shops ADD COLUMN default_retry TEXT NOT NULL DEFAULT '{"policy":"standard"}';

CREATE TABLE endpoints (
    id                        TEXT PRIMARY KEY,
    shop_id                   TEXT NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    url                       TEXT NOT NULL,
    description               TEXT NOT NULL DEFAULT '',
    enabled                   INTEGER NOT NULL DEFAULT 1,
    event_types               TEXT NOT NULL DEFAULT '[]',
    channels                  TEXT NOT NULL DEFAULT '[]',
    basic_auth_username       TEXT,
    basic_auth_password_enc   TEXT,
    headers                   TEXT NOT NULL DEFAULT '{}',
    content_type              TEXT NOT NULL DEFAULT 'application/json',
    template                  TEXT,
    retry                     TEXT NOT NULL DEFAULT '{"policy":"standard"}',
    timeout_ms                INTEGER NOT NULL DEFAULT 5000,
    priority                  INTEGER NOT NULL DEFAULT 1,   -- 0 high, 1 normal, 2 low
    unique_pending            INTEGER NOT NULL DEFAULT 0,
    disable_on_status         TEXT NOT NULL DEFAULT '[410]',
    unsubscribe_phrase        TEXT DEFAULT 'please unsubscribe me',
    unsubscribe_action        TEXT NOT NULL DEFAULT 'disable' CHECK (unsubscribe_action IN ('disable', 'delete')),
    disable_after_days        INTEGER DEFAULT 5,
    client_certificate_enc    TEXT,
    rate_limit_per_second     INTEGER,
    secret_enc                TEXT NOT NULL,
    previous_secret_enc       TEXT,
    previous_secret_until     INTEGER,
    disabled_reason           TEXT,
    failing_since             INTEGER,
    last_attempt_at           INTEGER,
    created_at                INTEGER NOT NULL,
    updated_at                INTEGER NOT NULL
);
CREATE INDEX endpoints_shop ON endpoints(shop_id);

-- A shop's own event types and its changes to the shipped ones; the shipped catalog itself is
-- compiled into the binary.
CREATE TABLE event_types (
    shop_id     TEXT NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    sample      TEXT NOT NULL DEFAULT '{}',
    schema      TEXT,
    source      TEXT NOT NULL DEFAULT 'custom' CHECK (source IN ('custom', 'discovered', 'edited')),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (shop_id, name)
);

CREATE TABLE events (
    shop_id    TEXT NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    id         TEXT NOT NULL,
    type       TEXT NOT NULL,
    channels   TEXT NOT NULL DEFAULT '[]',
    data       TEXT NOT NULL,
    entity_key TEXT,
    priority   INTEGER,
    deliveries TEXT NOT NULL DEFAULT '[]',   -- the delivery ids created when it was published
    created_at INTEGER NOT NULL,
    PRIMARY KEY (shop_id, id)
);
CREATE INDEX events_created ON events(shop_id, created_at);

-- The queue. Workers claim due rows (pending/retrying, next_attempt_at <= now) with a lease;
-- a lease that runs out makes the row claimable again.
CREATE TABLE deliveries (
    id               TEXT PRIMARY KEY,
    shop_id          TEXT NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    event_id         TEXT NOT NULL,
    endpoint_id      TEXT NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    event_type       TEXT NOT NULL,
    channels         TEXT NOT NULL DEFAULT '[]',
    entity_key       TEXT,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'delivering', 'retrying', 'succeeded', 'failed', 'cancelled', 'held')),
    priority         INTEGER NOT NULL DEFAULT 1,
    attempt_count    INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,
    lease_until      INTEGER,
    last_status_code INTEGER,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX deliveries_due ON deliveries(priority, next_attempt_at) WHERE status IN ('pending', 'retrying');
CREATE INDEX deliveries_leased ON deliveries(lease_until) WHERE status = 'delivering';
CREATE INDEX deliveries_shop ON deliveries(shop_id, id);
CREATE INDEX deliveries_shop_status ON deliveries(shop_id, status, id);
CREATE INDEX deliveries_endpoint ON deliveries(endpoint_id, status);
CREATE INDEX deliveries_event ON deliveries(shop_id, event_id);

CREATE TABLE attempts (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    shop_id          TEXT NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    delivery_id      TEXT NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    endpoint_id      TEXT NOT NULL,
    number           INTEGER NOT NULL,
    status_code      INTEGER,
    error_kind       TEXT,
    error_message    TEXT,
    duration_ms      INTEGER NOT NULL,
    request_headers  TEXT NOT NULL,
    request_body     TEXT NOT NULL,
    response_headers TEXT,
    response_body    TEXT,
    at               INTEGER NOT NULL
);
CREATE INDEX attempts_delivery ON attempts(delivery_id, number);
CREATE INDEX attempts_shop ON attempts(shop_id, id);

CREATE TABLE alerts (
    id              TEXT PRIMARY KEY,
    shop_id         TEXT NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    kind            TEXT NOT NULL,
    endpoint_id     TEXT,
    delivery_id     TEXT,
    message         TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    acknowledged_at INTEGER
);
CREATE INDEX alerts_shop ON alerts(shop_id, created_at);
