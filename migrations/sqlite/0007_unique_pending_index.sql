-- Unique pending looks up an endpoint's unsent delivery of an entity on every publish that
-- names one: a seek in this index, not a walk through the endpoint's deliveries.
CREATE INDEX deliveries_entity ON deliveries(endpoint_id, entity_key)
    WHERE entity_key IS NOT NULL AND status IN ('pending', 'retrying', 'held');
