-- An account's enrollments newest first, and those of one status: the
-- enrollment lists of the API and the console.
CREATE INDEX enrollments_account_created ON enrollments (account_id, created_at, id);
CREATE INDEX enrollments_account_status ON enrollments (account_id, status, created_at, id);
