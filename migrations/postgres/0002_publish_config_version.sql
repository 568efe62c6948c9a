-- A shop's publish configuration version (see migrations/sqlite/0009): bumped in the same
-- transaction as every change to what its publishes depend on, and checked inside each
-- publish transaction by the node that cached the shop's configuration.
ALTER TABLE shops ADD COLUMN config_version bigint NOT NULL DEFAULT 0;

CREATE FUNCTION herald_bump_config_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE shops SET config_version = config_version + 1 WHERE id = OLD.shop_id;
    ELSE
        UPDATE shops SET config_version = config_version + 1 WHERE id = NEW.shop_id;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION herald_bump_own_config_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.config_version := OLD.config_version + 1;
    RETURN NEW;
END $$;

CREATE TRIGGER endpoints_config AFTER INSERT OR DELETE
    OR UPDATE OF enabled, event_types, channels, priority, unique_pending, deleted_at ON endpoints
    FOR EACH ROW EXECUTE FUNCTION herald_bump_config_version();
CREATE TRIGGER api_keys_config AFTER DELETE OR UPDATE OF revoked_at ON api_keys
    FOR EACH ROW EXECUTE FUNCTION herald_bump_config_version();
CREATE TRIGGER event_types_config AFTER DELETE ON event_types
    FOR EACH ROW EXECUTE FUNCTION herald_bump_config_version();
CREATE TRIGGER shops_config BEFORE UPDATE OF webhooks_enabled ON shops
    FOR EACH ROW EXECUTE FUNCTION herald_bump_own_config_version();
