-- The queue gauges count the deliveries still open (waiting, leased or held) through this
-- index alone: a metrics scrape never scans the whole deliveries table.
CREATE INDEX deliveries_open ON deliveries(status)
    WHERE status IN ('pending', 'retrying', 'delivering', 'held');
