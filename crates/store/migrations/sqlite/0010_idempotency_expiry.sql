-- Idempotency keys expire a day after their first use; each new key removes
-- a batch of expired ones, found by this index.
CREATE INDEX idempotent_requests_created ON idempotent_requests (created_at);
