-- The contact type a contact gets when none is named: a reference to one
-- type of the account, so renaming it keeps it the default. Each account
-- has exactly one; accounts made before this migration get the type they
-- were created with last ("Other", whatever it is called now).
ALTER TABLE contact_types ADD COLUMN is_default INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1));
UPDATE contact_types SET is_default = 1
    WHERE id IN (SELECT t.id FROM contact_types t
                 WHERE t.position = (SELECT MAX(u.position) FROM contact_types u WHERE u.account_id = t.account_id));
CREATE UNIQUE INDEX contact_types_one_default ON contact_types (account_id) WHERE is_default = 1;
