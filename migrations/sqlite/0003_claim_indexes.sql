-- Claiming seeks each endpoint's due deliveries in queue order (so an endpoint with a large
-- backlog cannot keep another's deliveries out of a claim), the next due time is a seek on
-- next_attempt_at alone, and the plain endpoint index no longer carries the status, which
-- changes at every claim and every attempt.
DROP INDEX deliveries_due;
DROP INDEX deliveries_endpoint;
CREATE INDEX deliveries_endpoint ON deliveries(endpoint_id);
CREATE INDEX deliveries_endpoint_due ON deliveries(endpoint_id, priority, next_attempt_at)
    WHERE status IN ('pending', 'retrying');
CREATE INDEX deliveries_waiting ON deliveries(next_attempt_at) WHERE status IN ('pending', 'retrying');
