-- The account that uploaded an add-on: only that account (and its admins)
-- sees it, enables it and grants it. NULL for built-ins, which every
-- account sees.
ALTER TABLE plugins ADD COLUMN uploaded_by TEXT REFERENCES accounts (id) ON DELETE CASCADE;
