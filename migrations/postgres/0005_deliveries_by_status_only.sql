-- See migrations/sqlite/0012_deliveries_by_status_only.sql.
DROP INDEX deliveries_shop;
