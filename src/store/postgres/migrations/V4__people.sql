-- People (administrators, users, operators), keyed by "CVR address" ("-" for
-- operators): one address is one person per organisation. Invitation tokens
-- are stored only as SHA-256 and passwords only as argon2id, inside the record.
CREATE TABLE people (
    key  text COLLATE "C" PRIMARY KEY,
    rec  bytea NOT NULL
);

-- Login sessions, keyed by the SHA-256 of the cookie value.
CREATE TABLE sessions (
    hash bytea PRIMARY KEY,
    rec  bytea NOT NULL
);
