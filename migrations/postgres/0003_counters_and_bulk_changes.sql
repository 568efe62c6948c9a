-- Counters a page or a scrape reads instead of counting deliveries (see
-- migrations/sqlite/0010 for the names). Several nodes write at once, so nothing adds to a
-- counter row in the transaction that changes what it counts (every such transaction would
-- wait for the last to commit): statement triggers append to count_deltas, a node folds them
-- into counters every second, and readers add up both tables.
CREATE TABLE counters (
    shop_id TEXT COLLATE "C" NOT NULL,
    name    TEXT COLLATE "C" NOT NULL,
    n       BIGINT NOT NULL,
    PRIMARY KEY (shop_id, name)
);
CREATE TABLE count_deltas (
    shop_id TEXT COLLATE "C" NOT NULL,
    name    TEXT COLLATE "C" NOT NULL,
    n       BIGINT NOT NULL
);
CREATE INDEX count_deltas_shop ON count_deltas(shop_id, name);

INSERT INTO counters (shop_id, name, n)
    SELECT shop_id, 'q:' || status || ':' || endpoint_id, COUNT(*) FROM deliveries GROUP BY 1, 2;
INSERT INTO counters (shop_id, name, n)
    SELECT d.shop_id, 'c:' || j.value, COUNT(*) FROM deliveries d, jsonb_array_elements_text(d.channels) j
    GROUP BY 1, 2;
INSERT INTO counters (shop_id, name, n)
    SELECT shop_id, 'h:' || lpad((created_at / 3600000)::text, 8, '0') || ':events', COUNT(*) FROM events
    WHERE created_at >= (extract(epoch FROM now())::bigint - 8 * 86400) * 1000 GROUP BY 1, 2;
INSERT INTO counters (shop_id, name, n)
    SELECT shop_id, 'h:' || lpad((at / 3600000)::text, 8, '0') || ':'
        || CASE WHEN status_code BETWEEN 200 AND 299 THEN 'ok' ELSE 'fail' END || ':' || endpoint_id, COUNT(*)
    FROM attempts WHERE at >= (extract(epoch FROM now())::bigint - 8 * 86400) * 1000 GROUP BY 1, 2;

CREATE FUNCTION herald_count_inserted_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO count_deltas (shop_id, name, n)
        SELECT shop_id, 'q:' || status || ':' || endpoint_id, COUNT(*) FROM new_rows GROUP BY 1, 2;
    INSERT INTO count_deltas (shop_id, name, n)
        SELECT d.shop_id, 'c:' || j.value, COUNT(*) FROM new_rows d, jsonb_array_elements_text(d.channels) j
        GROUP BY 1, 2;
    RETURN NULL;
END $$;

CREATE FUNCTION herald_count_updated_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO count_deltas (shop_id, name, n)
        SELECT shop_id, name, SUM(n) FROM (
            SELECT o.shop_id, 'q:' || o.status || ':' || o.endpoint_id AS name, -1 AS n
            FROM old_rows o JOIN new_rows w ON w.id = o.id WHERE o.status <> w.status
            UNION ALL
            SELECT w.shop_id, 'q:' || w.status || ':' || w.endpoint_id, 1
            FROM old_rows o JOIN new_rows w ON w.id = o.id WHERE o.status <> w.status) x
        GROUP BY 1, 2 HAVING SUM(n) <> 0;
    RETURN NULL;
END $$;

CREATE FUNCTION herald_count_deleted_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO count_deltas (shop_id, name, n)
        SELECT shop_id, 'q:' || status || ':' || endpoint_id, -COUNT(*) FROM old_rows GROUP BY 1, 2;
    INSERT INTO count_deltas (shop_id, name, n)
        SELECT d.shop_id, 'c:' || j.value, -COUNT(*) FROM old_rows d, jsonb_array_elements_text(d.channels) j
        GROUP BY 1, 2;
    RETURN NULL;
END $$;

CREATE TRIGGER deliveries_count_insert AFTER INSERT ON deliveries
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION herald_count_inserted_deliveries();
CREATE TRIGGER deliveries_count_update AFTER UPDATE ON deliveries
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION herald_count_updated_deliveries();
CREATE TRIGGER deliveries_count_delete AFTER DELETE ON deliveries
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION herald_count_deleted_deliveries();

CREATE FUNCTION herald_forget_shop_counters() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM counters WHERE shop_id = OLD.id;
    DELETE FROM count_deltas WHERE shop_id = OLD.id;
    RETURN NULL;
END $$;
CREATE TRIGGER shops_counters_delete AFTER DELETE ON shops
    FOR EACH ROW EXECUTE FUNCTION herald_forget_shop_counters();

-- Changes to many deliveries at once, worked through in slices (see migrations/sqlite/0010).
CREATE TABLE bulk_changes (
    id          TEXT COLLATE "C" PRIMARY KEY,
    shop_id     TEXT COLLATE "C" NOT NULL REFERENCES shops(id) ON DELETE CASCADE,
    kind        TEXT COLLATE "C" NOT NULL CHECK (kind IN ('retry', 'resume', 'hold', 'cancel', 'purge')),
    status      TEXT COLLATE "C" NOT NULL,
    endpoint_id TEXT COLLATE "C",
    filter      TEXT NOT NULL DEFAULT '{}',
    up_to       TEXT COLLATE "C" NOT NULL,
    after_id    TEXT COLLATE "C" NOT NULL,
    total       BIGINT NOT NULL,
    done        BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX bulk_changes_open ON bulk_changes(created_at) WHERE finished_at IS NULL;
CREATE INDEX bulk_changes_shop ON bulk_changes(shop_id, created_at);
