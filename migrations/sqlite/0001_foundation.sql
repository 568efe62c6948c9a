-- Conventions for every migration: ids are prefixed text ("shp_…", "usr_…"), timestamps are
-- INTEGER unix milliseconds in UTC, rows that change carry updated_at. Migrations are
-- append-only: never edit one that has been released.

CREATE TABLE shops (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    webhooks_enabled INTEGER NOT NULL DEFAULT 0,
    require_https    INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    is_operator   INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- A user's role in one shop. Operators need no membership: they see every shop.
CREATE TABLE memberships (
    shop_id    TEXT NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('owner', 'viewer')),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (shop_id, user_id)
);
CREATE INDEX memberships_user ON memberships(user_id);

-- API keys are stored as the SHA-256 of the key; the key itself is shown once.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    shop_id      TEXT NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    key_prefix   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
CREATE INDEX api_keys_shop ON api_keys(shop_id);
