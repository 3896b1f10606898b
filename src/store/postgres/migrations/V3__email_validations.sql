-- E-mail validation: one record per organisation and address, keyed by
-- "CVR address" (the address in lower case). The token of a pending link is
-- stored only as its SHA-256, inside the record.
CREATE TABLE email_validations (
    key  text COLLATE "C" PRIMARY KEY,
    rec  bytea NOT NULL
);
