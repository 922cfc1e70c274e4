-- Fairness between accounts: the scheduler claims a share of every
-- account's due actions, so that one account's burst (a 100k-contact
-- enrollment) does not hold back another account's due work. For that an
-- action names its account itself, copied from its enrollment when it is
-- inserted (the insert reads it there, so the two cannot differ).
ALTER TABLE actions ADD COLUMN account_id TEXT;
UPDATE actions SET account_id = (SELECT account_id FROM enrollments WHERE enrollments.id = actions.enrollment_id);
-- The accounts with due work, and each account's due actions oldest first:
-- one index range per account, by the expression of `actions_due`.
CREATE INDEX actions_due_by_account
    ON actions (account_id, (CASE WHEN recheck_at > due_at THEN recheck_at ELSE due_at END))
    WHERE is_current AND status = 'future';
