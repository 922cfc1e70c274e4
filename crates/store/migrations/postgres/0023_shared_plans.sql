-- A sub-account enrolls its own contacts in the plans its parent shares
-- locked: an enrollment's sequence is its account's own or its parent's.
-- The account-scoped foreign key gives way to one on the sequence alone
-- and a trigger that holds the rule.
ALTER TABLE enrollments DROP CONSTRAINT enrollments_account_id_sequence_id_fkey;
ALTER TABLE enrollments ADD CONSTRAINT enrollments_sequence_id_fkey
    FOREIGN KEY (sequence_id) REFERENCES sequences (id) ON DELETE CASCADE;

CREATE FUNCTION enrollments_sequence_of_account() RETURNS trigger AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM sequences s
        WHERE s.id = NEW.sequence_id
          AND (s.account_id = NEW.account_id
               OR s.account_id = (SELECT parent_id FROM accounts WHERE id = NEW.account_id))
    ) THEN
        RAISE EXCEPTION 'enrollment % names sequence %, which is neither its account''s nor its parent''s',
            NEW.id, NEW.sequence_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER enrollments_sequence_of_account BEFORE INSERT OR UPDATE OF account_id, sequence_id ON enrollments
    FOR EACH ROW EXECUTE FUNCTION enrollments_sequence_of_account();

-- A sequence's enrollments by account: a sub-account's report of a shared
-- plan counts its own.
CREATE INDEX enrollments_sequence_account ON enrollments (sequence_id, account_id, status);
