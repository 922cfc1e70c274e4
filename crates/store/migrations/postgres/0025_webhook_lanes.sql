-- Claiming deliveries without reading the backlog: each ordering key of a
-- subscription is a lane, and only a lane's head (its first pending
-- delivery, while the subscription is active) can be claimed. A lane's row
-- counts its pending deliveries; writers and completions lock it, so a
-- lane's head is decided by one transaction at a time.
CREATE TABLE webhook_lanes (
    account_id      TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    ordering_key    TEXT NOT NULL,
    pending         BIGINT NOT NULL CHECK (pending >= 0),
    PRIMARY KEY (account_id, subscription_id, ordering_key),
    FOREIGN KEY (account_id, subscription_id) REFERENCES webhook_subscriptions (account_id, id) ON DELETE CASCADE
);

ALTER TABLE webhook_deliveries ADD COLUMN head BOOLEAN NOT NULL DEFAULT FALSE;

INSERT INTO webhook_lanes (account_id, subscription_id, ordering_key, pending)
SELECT account_id, subscription_id, ordering_key, COUNT(*)
FROM webhook_deliveries WHERE status = 'pending'
GROUP BY account_id, subscription_id, ordering_key;

UPDATE webhook_deliveries SET head = TRUE
WHERE seq IN (SELECT MIN(d.seq) FROM webhook_deliveries d
              JOIN webhook_subscriptions s ON s.account_id = d.account_id AND s.id = d.subscription_id
              WHERE d.status = 'pending' AND s.status = 'active'
              GROUP BY d.account_id, d.subscription_id, d.ordering_key);

-- A claimed delivery is not due again before its lease ends.
UPDATE webhook_deliveries SET next_attempt_at = lease_expires_at
WHERE status = 'pending' AND lease_expires_at > next_attempt_at;

DROP INDEX webhook_deliveries_due;
CREATE INDEX webhook_deliveries_heads ON webhook_deliveries (next_attempt_at, seq) WHERE status = 'pending' AND head;
