-- How an attempt's request is stored, and the index an event's delivery list replaces: see
-- migrations/sqlite/0011_requests_stored_once.sql.
ALTER TABLE attempts ADD COLUMN request_form BIGINT NOT NULL DEFAULT 0;
DROP INDEX deliveries_event;
