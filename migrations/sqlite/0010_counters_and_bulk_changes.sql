-- Counters a page or a scrape reads instead of counting deliveries, kept up to date in the
-- transaction that changes what they count. One row per (shop, name); names:
--   q:<status>:<endpoint id>        deliveries of an endpoint in a status
--   c:<channel>                     deliveries labelled with a channel
--   h:<hour, 8 digits>:events       events published in that hour (hours since 1970, UTC)
--   h:<hour, 8 digits>:ok:<endpoint>, h:<hour>:fail:<endpoint>   attempts in that hour
-- SQLite has one writer, so triggers add to the counter rows directly. PostgreSQL's nodes
-- append to count_deltas instead (no row two transactions must lock in turn) and a node folds
-- them in every second; readers add up both tables, so a count is exact at every commit.
CREATE TABLE counters (
    shop_id TEXT NOT NULL,
    name    TEXT NOT NULL,
    n       INTEGER NOT NULL,
    PRIMARY KEY (shop_id, name)
) WITHOUT ROWID;
CREATE TABLE count_deltas (
    shop_id TEXT NOT NULL,
    name    TEXT NOT NULL,
    n       INTEGER NOT NULL
);

INSERT INTO counters (shop_id, name, n)
    SELECT shop_id, 'q:' || status || ':' || endpoint_id, COUNT(*) FROM deliveries GROUP BY 1, 2;
INSERT INTO counters (shop_id, name, n)
    SELECT d.shop_id, 'c:' || j.value, COUNT(*) FROM deliveries d, json_each(d.channels) j
    GROUP BY 1, 2;
INSERT INTO counters (shop_id, name, n)
    SELECT shop_id, printf('h:%08d:events', created_at / 3600000), COUNT(*) FROM events
    WHERE created_at >= (unixepoch() - 8 * 86400) * 1000 GROUP BY 1, 2;
INSERT INTO counters (shop_id, name, n)
    SELECT shop_id, printf('h:%08d:%s:%s', at / 3600000,
        CASE WHEN status_code BETWEEN 200 AND 299 THEN 'ok' ELSE 'fail' END, endpoint_id), COUNT(*)
    FROM attempts WHERE at >= (unixepoch() - 8 * 86400) * 1000 GROUP BY 1, 2;

CREATE TRIGGER deliveries_count_insert AFTER INSERT ON deliveries BEGIN
    INSERT INTO counters (shop_id, name, n) VALUES (NEW.shop_id, 'q:' || NEW.status || ':' || NEW.endpoint_id, 1)
        ON CONFLICT (shop_id, name) DO UPDATE SET n = n + 1;
    INSERT INTO counters (shop_id, name, n)
        SELECT NEW.shop_id, 'c:' || value, 1 FROM json_each(NEW.channels) WHERE true
        ON CONFLICT (shop_id, name) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER deliveries_count_status AFTER UPDATE OF status ON deliveries
WHEN OLD.status <> NEW.status BEGIN
    UPDATE counters SET n = n - 1 WHERE shop_id = OLD.shop_id AND name = 'q:' || OLD.status || ':' || OLD.endpoint_id;
    INSERT INTO counters (shop_id, name, n) VALUES (NEW.shop_id, 'q:' || NEW.status || ':' || NEW.endpoint_id, 1)
        ON CONFLICT (shop_id, name) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER deliveries_count_delete AFTER DELETE ON deliveries BEGIN
    UPDATE counters SET n = n - 1 WHERE shop_id = OLD.shop_id AND name = 'q:' || OLD.status || ':' || OLD.endpoint_id;
    UPDATE counters SET n = n - 1 WHERE shop_id = OLD.shop_id
        AND name IN (SELECT 'c:' || value FROM json_each(OLD.channels));
END;
CREATE TRIGGER shops_counters_delete AFTER DELETE ON shops BEGIN
    DELETE FROM counters WHERE shop_id = OLD.id;
END;

-- Changes to many deliveries at once (a bulk retry, an endpoint's queue held, resumed,
-- cancelled or purged), worked through in slices by the engine: `after_id` is where the
-- last slice ended, `up_to` the last delivery id that existed when the change was asked for.
CREATE TABLE bulk_changes (
    id          TEXT PRIMARY KEY,
    shop_id     TEXT NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('retry', 'resume', 'hold', 'cancel', 'purge')),
    status      TEXT NOT NULL,
    endpoint_id TEXT,
    filter      TEXT NOT NULL DEFAULT '{}',
    up_to       TEXT NOT NULL,
    after_id    TEXT NOT NULL,
    total       INTEGER NOT NULL,
    done        INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX bulk_changes_open ON bulk_changes(created_at) WHERE finished_at IS NULL;
CREATE INDEX bulk_changes_shop ON bulk_changes(shop_id, created_at);
