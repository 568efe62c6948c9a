-- See migrations/sqlite/0012_deliveries_by_status_only.sql (also for what new attempt rows
-- leave out).
DROP INDEX deliveries_shop;
