//! The state database's schema, as an ordered list of migrations. A database records the
//! number of migrations applied (`PRAGMA user_version`); opening it applies the rest in one
//! transaction. Never edit a migration that has shipped: add one.
//!
//! The migrations are written for SQLite; PostgreSQL applies the same ones, numbered the same
//! (its version is in the table `certorch_schema`), with the few types that differ rewritten by
//! [`postgres`].

/// Migration `i` takes a database from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: accounts, certificates, orders in flight, published TXT records, audit log, archive.
    r#"
    CREATE TABLE accounts (
        directory    TEXT PRIMARY KEY,
        credentials  TEXT NOT NULL,          -- instant-acme credentials: holds the account key
        contact      TEXT NOT NULL,
        created_at   TEXT NOT NULL
    );
    CREATE TABLE runs (
        id           INTEGER PRIMARY KEY,
        command      TEXT NOT NULL,
        pid          INTEGER NOT NULL,
        started_at   TEXT NOT NULL,
        finished_at  TEXT,
        result       TEXT
    );
    CREATE TABLE certificates (
        host         TEXT NOT NULL,
        label        TEXT NOT NULL,
        names        TEXT NOT NULL,          -- JSON array
        key_type     TEXT NOT NULL,
        serial       TEXT NOT NULL,
        fingerprint  TEXT NOT NULL,          -- SHA-256 of the leaf's DER, hex
        not_before   TEXT NOT NULL,
        not_after    TEXT NOT NULL,
        ari_start    TEXT,                   -- RFC 9773 suggested window
        ari_end      TEXT,
        ari_checked  TEXT,
        deployed_to  TEXT NOT NULL,          -- JSON array of paths on the host
        last_result  TEXT NOT NULL,
        updated_at   TEXT NOT NULL,
        PRIMARY KEY (host, label)
    );
    CREATE TABLE orders (
        url          TEXT PRIMARY KEY,
        run_id       INTEGER NOT NULL,
        directory    TEXT NOT NULL,
        host         TEXT NOT NULL,
        label        TEXT NOT NULL,
        names        TEXT NOT NULL,
        status       TEXT NOT NULL,          -- open, issued, abandoned
        created_at   TEXT NOT NULL,
        updated_at   TEXT NOT NULL
    );
    CREATE INDEX orders_open ON orders (status);
    CREATE TABLE txt_records (
        id           INTEGER PRIMARY KEY,
        run_id       INTEGER NOT NULL,
        server       TEXT NOT NULL,
        zone         TEXT NOT NULL,
        name         TEXT NOT NULL,
        value        TEXT NOT NULL,
        ttl          INTEGER NOT NULL,
        published_at TEXT NOT NULL
    );
    CREATE TABLE audit (
        id           INTEGER PRIMARY KEY,
        at           TEXT NOT NULL,
        run_id       INTEGER,
        host         TEXT NOT NULL,
        label        TEXT NOT NULL,
        action       TEXT NOT NULL,
        result       TEXT NOT NULL,
        detail       TEXT NOT NULL
    );
    CREATE INDEX audit_at ON audit (at);
    CREATE TABLE archive (
        fingerprint  TEXT PRIMARY KEY,
        host         TEXT NOT NULL,
        label        TEXT NOT NULL,
        serial       TEXT NOT NULL,
        names        TEXT NOT NULL,
        not_before   TEXT NOT NULL,
        not_after    TEXT NOT NULL,
        order_url    TEXT NOT NULL,
        chain_pem    TEXT NOT NULL,          -- public material only
        issued_at    TEXT NOT NULL
    );
    CREATE INDEX archive_issued ON archive (issued_at);
    "#,
    // 2: the internal CA for `issuer: internal`; its key is the bastion's own, like the
    // account keys, and lives only in this 0600 file.
    r#"
    CREATE TABLE internal_ca (
        id           INTEGER PRIMARY KEY CHECK (id = 1),
        cert_pem     TEXT NOT NULL,
        key_pem      TEXT NOT NULL,
        created_at   TEXT NOT NULL
    );
    "#,
    // 3: who signed each deployed certificate, and the intermediates each ACME directory
    // issued from, so a certificate from another issuer is not current. Rows from before are
    // filled from the archive and the orders where those tell.
    r#"
    ALTER TABLE certificates ADD COLUMN issuer TEXT;     -- acme, internal, self-signed; NULL: not known
    ALTER TABLE certificates ADD COLUMN directory TEXT;  -- the ACME directory, for acme
    CREATE TABLE issuers (
        directory    TEXT NOT NULL,
        fingerprint  TEXT NOT NULL,          -- SHA-256 of der, hex
        subject_dn   TEXT NOT NULL,
        ski          TEXT,                   -- subject key identifier, hex
        der          BLOB NOT NULL,          -- public material only
        first_seen   TEXT NOT NULL,
        PRIMARY KEY (directory, fingerprint)
    );
    UPDATE certificates SET issuer = 'self-signed'
        WHERE fingerprint IN (SELECT fingerprint FROM archive WHERE order_url = 'self-signed');
    UPDATE certificates SET issuer = 'internal'
        WHERE fingerprint IN (SELECT fingerprint FROM archive WHERE order_url = 'internal-ca');
    UPDATE certificates SET issuer = 'acme', directory = (
            SELECT o.directory FROM archive a JOIN orders o ON o.url = a.order_url
            WHERE a.fingerprint = certificates.fingerprint)
        WHERE issuer IS NULL AND EXISTS (
            SELECT 1 FROM archive a JOIN orders o ON o.url = a.order_url
            WHERE a.fingerprint = certificates.fingerprint);
    "#,
    // 4: each certificate's place in its lifecycle, written at every transition so a killed run
    // is resumed (the order URL, the CSR whose key is staged on the host, the finalized chain);
    // and when the CA was last asked to look at each signing-zone name, with the values it
    // could have cached there and for how long.
    r#"
    CREATE TABLE lifecycle (
        host         TEXT NOT NULL,
        label        TEXT NOT NULL,
        phase        TEXT NOT NULL,
        run_id       INTEGER,
        directory    TEXT NOT NULL,
        names        TEXT NOT NULL,          -- JSON array
        csr          BLOB,                   -- DER of the CSR whose key is staged on the host
        order_url    TEXT,
        fingerprint  TEXT,                   -- the finalized leaf
        chain_pem    TEXT,                   -- the finalized chain (public)
        kind         TEXT,                   -- a failed certificate's error kind
        updated_at   TEXT NOT NULL,
        PRIMARY KEY (host, label)
    );
    CREATE TABLE presentations (
        name         TEXT PRIMARY KEY,       -- the TXT owner in the signing zone
        vals         TEXT NOT NULL,          -- JSON array of the values published there
        ttl          INTEGER NOT NULL,
        asked_at     TEXT NOT NULL
    );
    "#,
    // 5: the certificate each order replaced (its ARI identifier, RFC 9773 §4.1), when the
    // order named one: Let's Encrypt exempts such renewals from its rate limits, so the
    // scheduler does not count them. NULL: a new order, or one from before this migration.
    r#"
    ALTER TABLE orders ADD COLUMN replaces TEXT;
    "#,
    // 6: what the certificate and key files looked like (`stat`: device, inode, size, times)
    // when a survey last saw the key belong to the certificate, and that certificate: while
    // neither file has changed, the next survey need not start openssl on the host to check
    // the key again.
    r#"
    CREATE TABLE key_stamps (
        host         TEXT NOT NULL,
        label        TEXT NOT NULL,
        stamp        TEXT NOT NULL,          -- what the host's stat printed for both files
        fingerprint  TEXT NOT NULL,          -- the certificate the key belonged to
        checked_at   TEXT NOT NULL,
        PRIMARY KEY (host, label)
    );
    "#,
];

/// Migration `sqlite` in PostgreSQL's types: a rowid (`INTEGER PRIMARY KEY`) becomes a 64-bit
/// identity column, every other `INTEGER` a `BIGINT` (SQLite's integers are 64-bit), `BLOB`
/// becomes `BYTEA`, and `TEXT` compares byte by byte (`COLLATE "C"`, SQLite's BINARY) whatever
/// the database's locale, so times stored as RFC 3339 text and names sort and compare alike on
/// both. The rest of the DDL and the data statements are common SQL.
pub fn postgres(sqlite: &str) -> String {
    sqlite
        .replace(" TEXT", " TEXT COLLATE \"C\"")
        .replace("INTEGER PRIMARY KEY", "\u{0}")
        .replace("INTEGER", "BIGINT")
        .replace(
            "\u{0}",
            "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        )
        .replace("BLOB", "BYTEA")
}

#[cfg(test)]
mod tests {
    #[test]
    fn postgres_types() {
        assert_eq!(
            super::postgres(
                "id INTEGER PRIMARY KEY, n INTEGER NOT NULL, der BLOB NOT NULL, t TEXT"
            ),
            "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, n BIGINT NOT NULL, der BYTEA NOT NULL, t TEXT COLLATE \"C\""
        );
        // Every migration says INTEGER/BLOB only as types.
        for m in super::MIGRATIONS {
            let pg = super::postgres(m);
            assert!(!pg.contains("INTEGER") && !pg.contains("BLOB"), "{pg}");
        }
    }
}
