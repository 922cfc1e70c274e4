-- The actions held for a reason (`GET /v1/actions?deferral=…`): the
-- current future actions with a deferral reason, by reason then id, so a
-- reason's list is one index range however large the due queue is.
CREATE INDEX actions_held ON actions (deferral_reason, id)
    WHERE is_current AND status = 'future' AND deferral_reason IS NOT NULL;
