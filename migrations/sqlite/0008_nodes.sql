-- Nodes: every `herald serve` process writes a heartbeat here; the operator's Nodes page lists
-- them with what each holds (deliveries leased under its lease prefix). On SQLite there is one.
CREATE TABLE nodes (
    id             TEXT PRIMARY KEY,
    lease_prefix   TEXT NOT NULL,
    version        TEXT NOT NULL,
    started_at     INTEGER NOT NULL,
    heartbeat_at   INTEGER NOT NULL,
    stopped_at     INTEGER,
    -- Live activity streams open on the node: others relay their activity to it only then.
    listeners      INTEGER NOT NULL DEFAULT 0
);

-- An endpoint's rate limit, shared by every node: the time its next send may start (a
-- virtual schedule, GCRA). A claim reserves its deliveries' send slots here.
CREATE TABLE rate_slots (
    endpoint_id TEXT PRIMARY KEY REFERENCES endpoints(id) ON DELETE CASCADE,
    next_at     INTEGER NOT NULL
);
