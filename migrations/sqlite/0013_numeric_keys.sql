-- A delivery's key is a number (ids::DeliveryId): the milliseconds of its creation shifted
-- left 20 bits, plus a count within that millisecond. It is the rowid, so no index of its
-- own, and attempts, the events' lists, bulk changes and every index refer to it in a few
-- bytes instead of a 30-character text id. Its public id (`dlv_` and 13 base32 characters)
-- is written from it and sorts as it does.
--
-- Deliveries made before keep a key made the same way from their creation time (in their
-- old ids' order within a millisecond), and their old ids still find them through
-- delivery_legacy_ids.
--
-- Shops and endpoints are numbered too (`num`, set on insert by a trigger). Events,
-- deliveries and attempts, the rows written for every event, name their shop by that number
-- (`shop`), and deliveries their endpoint (`endpoint`): their tables and indexes no longer
-- repeat 30-character ids in every entry.
ALTER TABLE shops ADD COLUMN num INTEGER;
UPDATE shops SET num = rowid;
CREATE UNIQUE INDEX shops_num ON shops(num);
CREATE TRIGGER shops_number AFTER INSERT ON shops WHEN NEW.num IS NULL BEGIN
    UPDATE shops SET num = (SELECT COALESCE(MAX(num), 0) + 1 FROM shops) WHERE id = NEW.id;
END;
ALTER TABLE endpoints ADD COLUMN num INTEGER;
UPDATE endpoints SET num = rowid;
CREATE UNIQUE INDEX endpoints_num ON endpoints(num);
CREATE TRIGGER endpoints_number AFTER INSERT ON endpoints WHEN NEW.num IS NULL BEGIN
    UPDATE endpoints SET num = (SELECT COALESCE(MAX(num), 0) + 1 FROM endpoints)
    WHERE id = NEW.id;
END;

CREATE TABLE events_numbered (
    shop       INTEGER NOT NULL REFERENCES shops(num) ON DELETE CASCADE,
    id         TEXT NOT NULL,
    type       TEXT NOT NULL,
    channels   TEXT NOT NULL DEFAULT '[]',
    data       TEXT NOT NULL,
    entity_key TEXT,
    priority   INTEGER,
    deliveries TEXT NOT NULL DEFAULT '[]',   -- the keys of the deliveries made for it
    created_at INTEGER NOT NULL,
    PRIMARY KEY (shop, id)
);
INSERT INTO events_numbered (shop, id, type, channels, data, entity_key, priority, deliveries,
    created_at)
    SELECT s.num, e.id, e.type, e.channels, e.data, e.entity_key, e.priority, e.deliveries,
    e.created_at FROM events e JOIN shops s ON s.id = e.shop_id;
DROP TABLE events;
ALTER TABLE events_numbered RENAME TO events;
CREATE INDEX events_created ON events(shop, created_at);
CREATE TABLE delivery_legacy_ids (
    legacy_id TEXT PRIMARY KEY,
    id        INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO delivery_legacy_ids (legacy_id, id)
    SELECT id, (created_at << 20) + row_number() OVER (PARTITION BY created_at ORDER BY id) - 1
    FROM deliveries;

CREATE TABLE deliveries_keyed (
    id               INTEGER PRIMARY KEY,
    shop             INTEGER NOT NULL REFERENCES shops(num) ON DELETE CASCADE,
    event_id         TEXT NOT NULL,
    endpoint         INTEGER NOT NULL REFERENCES endpoints(num) ON DELETE CASCADE,
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
    updated_at       INTEGER NOT NULL,
    lease_owner      TEXT
);
INSERT INTO deliveries_keyed (id, shop, event_id, endpoint, event_type, channels,
    entity_key, status, priority, attempt_count, next_attempt_at, lease_until,
    last_status_code, last_error, created_at, updated_at, lease_owner)
    SELECT l.id, (SELECT num FROM shops s WHERE s.id = d.shop_id), d.event_id,
    (SELECT num FROM endpoints e WHERE e.id = d.endpoint_id), d.event_type, d.channels, d.entity_key,
    d.status, d.priority, d.attempt_count, d.next_attempt_at, d.lease_until,
    d.last_status_code, d.last_error, d.created_at, d.updated_at, d.lease_owner
    FROM deliveries d JOIN delivery_legacy_ids l ON l.legacy_id = d.id;

CREATE TABLE attempts_keyed (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    shop             INTEGER NOT NULL REFERENCES shops(num) ON DELETE CASCADE,
    delivery_id      INTEGER NOT NULL REFERENCES deliveries_keyed(id) ON DELETE CASCADE,
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
    at               INTEGER NOT NULL,
    request_form     INTEGER NOT NULL DEFAULT 0
);
INSERT INTO attempts_keyed (id, shop, delivery_id, endpoint_id, number, status_code,
    error_kind, error_message, duration_ms, request_headers, request_body, response_headers,
    response_body, at, request_form)
    SELECT a.id, (SELECT num FROM shops s WHERE s.id = a.shop_id), l.id, a.endpoint_id, a.number, a.status_code, a.error_kind,
    a.error_message, a.duration_ms, a.request_headers, a.request_body, a.response_headers,
    a.response_body, a.at, a.request_form
    FROM attempts a JOIN delivery_legacy_ids l ON l.legacy_id = a.delivery_id;

-- The old tables go child first, so dropping them cascades to nothing (a DROP fires no
-- trigger; the counters stay as they are, and the rows they count are all copied).
DROP TABLE attempts;
DROP TABLE deliveries;
ALTER TABLE deliveries_keyed RENAME TO deliveries;
ALTER TABLE attempts_keyed RENAME TO attempts;

CREATE INDEX deliveries_leased ON deliveries(lease_until) WHERE status = 'delivering';
-- Entries sort by (shop, status, rowid), and the rowid is the key: a shop's deliveries of a
-- status, newest first, without the key stored twice.
CREATE INDEX deliveries_shop_status ON deliveries(shop, status);
CREATE INDEX deliveries_endpoint ON deliveries(endpoint);
CREATE INDEX deliveries_endpoint_due ON deliveries(endpoint, priority, next_attempt_at)
    WHERE status IN ('pending', 'retrying');
CREATE INDEX deliveries_waiting ON deliveries(next_attempt_at) WHERE status IN ('pending', 'retrying');
CREATE INDEX deliveries_entity ON deliveries(endpoint, entity_key)
    WHERE entity_key IS NOT NULL AND status IN ('pending', 'retrying', 'held');
CREATE INDEX attempts_delivery ON attempts(delivery_id, number);
CREATE INDEX attempts_shop ON attempts(shop, id);

-- The counters name shops and endpoints by id.
CREATE TRIGGER deliveries_count_insert AFTER INSERT ON deliveries BEGIN
    INSERT INTO counters (shop_id, name, n)
        SELECT s.id, 'q:' || NEW.status || ':' || e.id, 1 FROM shops s, endpoints e
        WHERE s.num = NEW.shop AND e.num = NEW.endpoint
        ON CONFLICT (shop_id, name) DO UPDATE SET n = n + 1;
    INSERT INTO counters (shop_id, name, n)
        SELECT s.id, 'c:' || j.value, 1 FROM shops s, json_each(NEW.channels) j WHERE s.num = NEW.shop
        ON CONFLICT (shop_id, name) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER deliveries_count_status AFTER UPDATE OF status ON deliveries
WHEN OLD.status <> NEW.status BEGIN
    UPDATE counters SET n = n - 1 WHERE shop_id = (SELECT id FROM shops WHERE num = OLD.shop)
        AND name = 'q:' || OLD.status || ':' || (SELECT id FROM endpoints WHERE num = OLD.endpoint);
    INSERT INTO counters (shop_id, name, n)
        SELECT s.id, 'q:' || NEW.status || ':' || e.id, 1 FROM shops s, endpoints e
        WHERE s.num = NEW.shop AND e.num = NEW.endpoint
        ON CONFLICT (shop_id, name) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER deliveries_count_delete AFTER DELETE ON deliveries BEGIN
    UPDATE counters SET n = n - 1 WHERE shop_id = (SELECT id FROM shops WHERE num = OLD.shop)
        AND name = 'q:' || OLD.status || ':' || (SELECT id FROM endpoints WHERE num = OLD.endpoint);
    UPDATE counters SET n = n - 1 WHERE shop_id = (SELECT id FROM shops WHERE num = OLD.shop)
        AND name IN (SELECT 'c:' || value FROM json_each(OLD.channels));
END;

-- An event lists its deliveries' keys.
UPDATE events SET deliveries = (SELECT json_group_array(k.id) FROM
    (SELECT l.id FROM json_each(events.deliveries) j
     JOIN delivery_legacy_ids l ON l.legacy_id = j.value ORDER BY j.key) k)
    WHERE deliveries <> '[]';

-- A bulk change's bounds are keys: an old bound becomes the key of the last delivery at or
-- before it (-1 before the first).
CREATE TABLE bulk_changes_keyed (
    id          TEXT PRIMARY KEY,
    shop_id     TEXT NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('retry', 'resume', 'hold', 'cancel', 'purge')),
    status      TEXT NOT NULL,
    endpoint_id TEXT,
    filter      TEXT NOT NULL DEFAULT '{}',
    up_to       INTEGER NOT NULL,
    after_id    INTEGER NOT NULL,
    total       INTEGER NOT NULL,
    done        INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    finished_at INTEGER
);
INSERT INTO bulk_changes_keyed SELECT id, shop_id, kind, status, endpoint_id, filter,
    COALESCE((SELECT MAX(l.id) FROM delivery_legacy_ids l WHERE l.legacy_id <= b.up_to), 0),
    COALESCE((SELECT MAX(l.id) FROM delivery_legacy_ids l WHERE l.legacy_id <= b.after_id), -1),
    total, done, created_at, updated_at, finished_at FROM bulk_changes b;
DROP TABLE bulk_changes;
ALTER TABLE bulk_changes_keyed RENAME TO bulk_changes;
CREATE INDEX bulk_changes_open ON bulk_changes(created_at) WHERE finished_at IS NULL;
CREATE INDEX bulk_changes_shop ON bulk_changes(shop_id, created_at);
