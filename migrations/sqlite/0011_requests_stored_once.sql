-- How an attempt's request is stored (engine::recorded::RequestForm): 0 as sent; 1 without
-- the headers the delivery itself names (event id and type, delivery id, attempt number);
-- 2 without those, the content type and the body, which is the event's default envelope.
-- Forms 1 and 2 are rebuilt from the delivery and its event when read. Rows written before
-- this column are as sent.
ALTER TABLE attempts ADD COLUMN request_form INTEGER NOT NULL DEFAULT 0;

-- An event lists its deliveries (events.deliveries, kept up to date when a newer event takes
-- one over), so reading an event's deliveries and retention's "no delivery left" check go by
-- that list and the deliveries' primary key; this index cost ~80 bytes per delivery.
DROP INDEX deliveries_event;
