-- A lease has an owner: the token its claim wrote. Every later write for a leased delivery
-- (its attempt's outcome, giving it back) names that token, so a holder whose lease ran out
-- and was claimed again can never overwrite the new holder's state.
ALTER TABLE deliveries ADD COLUMN lease_owner TEXT;
