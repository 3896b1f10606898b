-- One current CRL per CA generation (CA rollover): generation 1 is the
-- first CA, whose CRL the one-row table held until now.
CREATE TABLE crls (
    generation  bigint PRIMARY KEY CHECK (generation >= 1),
    rec         bytea NOT NULL
);
INSERT INTO crls (generation, rec) SELECT 1, rec FROM crl;
DROP TABLE crl;
