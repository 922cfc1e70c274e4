-- POST requests made under an `Idempotency-Key`: a replay answers the first
-- response again instead of acting twice. `scope` is a hash of the API key
-- that made it, so keys of different clients never collide; `fingerprint`
-- hashes the method, path and body, so a different request under a used key
-- is refused. `status` 0 marks a request still being answered.
CREATE TABLE idempotent_requests (
    scope         TEXT NOT NULL,
    key           TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    status        INTEGER NOT NULL,
    content_type  TEXT NOT NULL,
    body          TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
);
