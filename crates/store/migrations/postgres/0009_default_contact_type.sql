-- The contact type a contact gets when none is named: a reference to one
-- type of the account, so renaming it keeps it the default. Each account
-- has exactly one; accounts made before this migration get the type they
-- were created with last ("Other", whatever it is called now).
ALTER TABLE contact_types ADD COLUMN is_default BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE contact_types SET is_default = TRUE
    WHERE id IN (SELECT DISTINCT ON (account_id) id FROM contact_types ORDER BY account_id, position DESC, id);
CREATE UNIQUE INDEX contact_types_one_default ON contact_types (account_id) WHERE is_default;
