-- A user's sessions carry the version they were signed in under; changing or resetting the
-- password bumps it, which ends every other session of that user at its next request
-- (sessions are not indexed by user, so they cannot be looked up and deleted).
ALTER TABLE users ADD COLUMN session_version INTEGER NOT NULL DEFAULT 0;
