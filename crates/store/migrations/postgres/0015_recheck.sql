-- A held action keeps its due date; when it is looked at again is its own
-- column, `recheck_at`. The scheduler claims by the later of the two (the
-- expression the claim, the wake-up and the due backlog name word for word),
-- so a hold never overwrites the due date and a due date moved later than
-- the re-check still holds the action back.
ALTER TABLE actions ADD COLUMN recheck_at BIGINT;
DROP INDEX actions_due;
CREATE INDEX actions_due ON actions ((CASE WHEN recheck_at > due_at THEN recheck_at ELSE due_at END))
    WHERE is_current AND status = 'future';
