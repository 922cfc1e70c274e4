-- The actions under a lease (in flight on some host, or left by one that
-- died): a handful among millions, found without scanning the due queue
-- when the scheduler asks when it next has something to do.
CREATE INDEX actions_leased ON actions (lease_expires_at)
    WHERE lease_token IS NOT NULL AND is_current AND status = 'future';
