-- When a dispatcher began handing the message to its transport, committed
-- before the transport is called and cleared when the outcome is recorded.
-- A queued message that still carries it once its lease has expired was
-- handed over by a host that stopped before recording what happened: it may
-- have been sent, so it is handed over again only on a channel whose
-- transport deduplicates retries (never twice over SMTP).
ALTER TABLE outbox ADD COLUMN handover_started_at INTEGER CHECK (handover_started_at IS NULL OR state = 'queued');
-- The provider's id for a sent message (an SMS provider's message sid, the
-- Message-ID of an email), for tracing a delivery at the provider.
ALTER TABLE outbox ADD COLUMN provider_id TEXT;
-- GET /v1/outbox lists an account's messages oldest first, filtered by state
-- and channel.
CREATE INDEX outbox_account ON outbox (account_id, created_at, id);
