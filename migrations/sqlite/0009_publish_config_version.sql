-- A shop's publish configuration version, bumped in the same transaction as every change to
-- what its publishes depend on: its endpoints' subscriptions and switches, its API keys, its webhooks
-- switch, its catalog's deletions. Publishers keep the shop's configuration in memory and
-- check this number inside each publish transaction, so a cached copy is never used after a
-- change has committed, on this node or any other.
ALTER TABLE shops ADD COLUMN config_version INTEGER NOT NULL DEFAULT 0;

CREATE TRIGGER endpoints_config_insert AFTER INSERT ON endpoints BEGIN
    UPDATE shops SET config_version = config_version + 1 WHERE id = NEW.shop_id;
END;
CREATE TRIGGER endpoints_config_delete AFTER DELETE ON endpoints BEGIN
    UPDATE shops SET config_version = config_version + 1 WHERE id = OLD.shop_id;
END;
CREATE TRIGGER endpoints_config_update
AFTER UPDATE OF enabled, event_types, channels, priority, unique_pending, deleted_at ON endpoints BEGIN
    UPDATE shops SET config_version = config_version + 1 WHERE id = NEW.shop_id;
END;
CREATE TRIGGER api_keys_config_update AFTER UPDATE OF revoked_at ON api_keys BEGIN
    UPDATE shops SET config_version = config_version + 1 WHERE id = NEW.shop_id;
END;
CREATE TRIGGER api_keys_config_delete AFTER DELETE ON api_keys BEGIN
    UPDATE shops SET config_version = config_version + 1 WHERE id = OLD.shop_id;
END;
CREATE TRIGGER event_types_config_delete AFTER DELETE ON event_types BEGIN
    UPDATE shops SET config_version = config_version + 1 WHERE id = OLD.shop_id;
END;
CREATE TRIGGER shops_config_update AFTER UPDATE OF webhooks_enabled ON shops BEGIN
    UPDATE shops SET config_version = config_version + 1 WHERE id = NEW.id;
END;
