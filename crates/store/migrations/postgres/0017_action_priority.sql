-- How urgent an action is, for sorting and filtering the Engage view and a
-- company's work items: 1 low, 2 normal, 3 high (so `DESC` puts high
-- first). It comes from the step's config (`priority`), copied when the
-- action is projected, as its step never changes under it.
ALTER TABLE actions ADD COLUMN priority BIGINT NOT NULL DEFAULT 2 CHECK (priority IN (1, 2, 3));
-- Actions still to be worked take their step's priority now.
UPDATE actions SET priority = CASE sv.steps::jsonb -> actions.step::int -> 'config' ->> 'priority'
                                  WHEN 'high' THEN 3 WHEN 'low' THEN 1 ELSE 2 END
FROM enrollments e
JOIN sequence_versions sv ON sv.sequence_id = e.sequence_id AND sv.version = e.version
WHERE e.id = actions.enrollment_id AND actions.status IN ('future', 'active');
-- A rep's Engage view by priority, then due date.
CREATE INDEX actions_engage_priority ON actions (owner_id, priority DESC, due_at) WHERE status = 'active';
