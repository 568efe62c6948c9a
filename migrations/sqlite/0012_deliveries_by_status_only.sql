-- A shop's deliveries of every status, newest first, are read by merging the newest of each
-- status from deliveries_shop_status (store::deliveries::list_deliveries); counts without a
-- status walk that index's shop prefix. This index cost ~80 bytes per delivery.
DROP INDEX deliveries_shop;

-- Attempts store their kept signing headers packed (request_form 5 and 6, see
-- engine::recorded), and attempts.endpoint_id empty: an attempt's endpoint is its delivery's,
-- read through it. Rows written before keep their forms 0 to 2 and their endpoint ids. No
-- column changes.
