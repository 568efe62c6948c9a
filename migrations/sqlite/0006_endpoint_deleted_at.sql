-- An endpoint deleted because its receiver asked to unsubscribe is kept, marked deleted:
-- its deliveries and attempts stay as the evidence of what was sent and why it went. It is
-- gone from every list and lookup; an owner's own delete still removes it outright.
ALTER TABLE endpoints ADD COLUMN deleted_at INTEGER;
