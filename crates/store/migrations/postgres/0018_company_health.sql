-- A company's health score (the engagement overview): each account weighs
-- its own indicators against its own targets. One row per account that
-- changed the defaults; the config is the domain's `HealthConfig` as JSON.
CREATE TABLE health_settings (
    account_id  TEXT PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    config      TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- The score's history: one snapshot per company and week (the Monday,
-- 00:00 UTC, in milliseconds), taken by the scheduler's weekly sweep or a
-- refresh, which replaces the week's row. `indicators` is the scored
-- `HealthScore` as JSON, so a past week reads as it was computed.
CREATE TABLE company_health (
    account_id   TEXT NOT NULL,
    company_id   TEXT NOT NULL,
    week_start   BIGINT NOT NULL,
    score        DOUBLE PRECISION NOT NULL CHECK (score >= 0 AND score <= 100),
    indicators   TEXT NOT NULL,
    computed_at  BIGINT NOT NULL,
    PRIMARY KEY (company_id, week_start),
    FOREIGN KEY (account_id, company_id) REFERENCES companies (account_id, id) ON DELETE CASCADE
);
-- The sweep's "which companies have no snapshot this week".
CREATE INDEX company_health_week ON company_health (week_start, company_id);
