//! Durable state: ACME accounts, the certificates certorch manages, orders and TXT records in
//! flight (written before they exist remotely, so a killed run is repaired by the next), an
//! append-only audit log and an archive of issued chains. Public material and account
//! credentials only: never a host's private key.
//!
//! By default one SQLite file (`state.db`, mode 0600) in the state directory; optionally a
//! PostgreSQL database (`postgresql://…`), shared by several bastions. Both sit behind the
//! small façade in `db.rs`, with the same SQL and the same migrations.

mod db;
mod lifecycle;
mod pgpass;
mod postgres;
mod postgres_tls;
mod schema;

pub use lifecycle::{Lifecycle, Phase, Presentation};
pub use postgres::Url as PostgresUrl;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use db::{Db, Row, Value, vals};

use crate::plan::schedule::{PastIssue, PastOrder};

/// The database file inside the state directory.
pub const DB_FILE: &str = "state.db";

/// A state operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("state database {}: {detail}", path.display())]
    Db { path: PathBuf, detail: String },
    #[error("cannot record in the state database {}: {detail}", path.display())]
    Write { path: PathBuf, detail: String },
    /// The file is not a SQLite database, or SQLite finds it damaged: never written to,
    /// never recreated (that would lose the account keys and what is in flight).
    #[error("the state database {} is damaged or not a database: {detail}", path.display())]
    Corrupt { path: PathBuf, detail: String },
    /// TLS to PostgreSQL failed, or the server wants it and the URL does not ask for it.
    #[error("state database {}: {detail}", path.display())]
    Tls {
        path: PathBuf,
        detail: String,
        hint: String,
    },
    #[error("state database {} has schema version {found}; this certorch knows up to {known}", path.display())]
    TooNew {
        path: PathBuf,
        found: i64,
        known: usize,
    },
}

impl Error {
    /// What the operator should do next.
    pub fn hint(&self) -> String {
        let on_postgres = match self {
            Error::Db { path, .. }
            | Error::Write { path, .. }
            | Error::Corrupt { path, .. }
            | Error::TooNew { path, .. } => PostgresUrl::is_postgres(&path.to_string_lossy()),
            Error::Tls { .. } => true,
        };
        match self {
            Error::Tls { hint, .. } => hint.clone(),
            Error::Db { .. } if on_postgres => {
                "check that PostgreSQL is up and reachable at this URL, and the user's password (password_file=, PGPASSWORD or ~/.pgpass) and rights on the database"
                    .into()
            }
            Error::Write { .. } if on_postgres => {
                "check that PostgreSQL is up and has space, then run certorch again: what is not recorded is not lost at the CA, the next run resumes it"
                    .into()
            }
            Error::Db { .. } => {
                "check the state directory's permissions and free space (--state to use another)"
                    .into()
            }
            Error::Write { .. } => {
                "free space on the state directory's filesystem or make it writable, then run certorch again: what is not recorded is not lost at the CA, the next run resumes it"
                    .into()
            }
            Error::TooNew { .. } => {
                "a newer certorch wrote this state: run that version, or restore a backup".into()
            }
            Error::Corrupt { path, .. } => format!(
                "certorch left {0} as it is and did nothing: restore it from a backup (it holds the ACME account keys, the orders and TXT records in flight, the audit log); to start afresh instead, move it aside (mv {0} {0}.damaged): the next run registers a new account and orders every certificate again",
                path.display()
            ),
        }
    }
}

impl crate::problem::Problem for Error {
    fn kind(&self) -> crate::problem::Kind {
        match self {
            Error::Write { .. } => crate::problem::Kind::StateWriteFailed,
            Error::Db { .. } | Error::TooNew { .. } => crate::problem::Kind::StateReadFailed,
            Error::Corrupt { .. } => crate::problem::Kind::StateCorrupt,
            Error::Tls { .. } => crate::problem::Kind::StateTlsFailed,
        }
    }
    fn hint(&self) -> Option<String> {
        Some(Error::hint(self))
    }
}

/// A failed connection to PostgreSQL as a state error: TLS failures keep their own hint.
fn connect_error(path: &Path, e: postgres::ConnectError) -> Error {
    match e.tls_hint {
        Some(hint) => Error::Tls {
            path: path.to_path_buf(),
            detail: e.detail,
            hint,
        },
        None => Error::Db {
            path: path.to_path_buf(),
            detail: e.detail,
        },
    }
}

/// How certorch last left a recorded certificate. Stored as text (`issued`, `current`,
/// `revoked`, `failed at <stage>`); a text this version does not know reads as `Other`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LastResult {
    Issued,
    Current,
    /// Revoked with `certorch revoke`: the next run replaces it.
    Revoked,
    /// Due, but left for a later run by the CA's rate limits (not a failure).
    Deferred {
        until: OffsetDateTime,
    },
    Failed {
        stage: String,
    },
    Other(String),
}

impl LastResult {
    fn parse(s: &str) -> LastResult {
        match s {
            "issued" => LastResult::Issued,
            "current" => LastResult::Current,
            "revoked" => LastResult::Revoked,
            s => {
                if let Some(stage) = s.strip_prefix("failed at ") {
                    LastResult::Failed {
                        stage: stage.to_string(),
                    }
                } else if let Some(t) = s
                    .strip_prefix("deferred until ")
                    .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
                {
                    LastResult::Deferred { until: t }
                } else {
                    LastResult::Other(s.to_string())
                }
            }
        }
    }

    /// The run left it in order (issued or current), or deferred it (not a failure).
    pub fn ok(&self) -> bool {
        matches!(
            self,
            LastResult::Issued | LastResult::Current | LastResult::Deferred { .. }
        )
    }
}

impl std::fmt::Display for LastResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LastResult::Issued => f.write_str("issued"),
            LastResult::Current => f.write_str("current"),
            LastResult::Revoked => f.write_str("revoked"),
            LastResult::Deferred { until } => write!(f, "deferred until {}", fmt_time(*until)),
            LastResult::Failed { stage } => write!(f, "failed at {stage}"),
            LastResult::Other(s) => f.write_str(s),
        }
    }
}

impl serde::Serialize for LastResult {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What a host's certificate and key files looked like (`stat`, as the host printed it) when
/// a survey saw the key belong to the certificate `fingerprint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStamp {
    pub stamp: String,
    pub fingerprint: String,
}

/// What certorch recorded about a deployed certificate.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Recorded {
    pub host: String,
    pub label: String,
    pub names: Vec<String>,
    pub key_type: String,
    pub serial: String,
    pub fingerprint: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ari_start: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ari_end: Option<OffsetDateTime>,
    pub deployed_to: Vec<String>,
    pub last_result: LastResult,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Who certorch deployed it from: `acme`, `internal`, `self-signed`; `None` if deployed
    /// before certorch recorded it.
    pub issuer: Option<String>,
    /// The ACME directory it came from, for `acme`.
    pub directory: Option<String>,
}

/// A TXT record published and not yet withdrawn.
#[derive(Debug, Clone)]
pub struct TxtRow {
    pub id: i64,
    pub zone: String,
    pub name: String,
    pub value: String,
    pub ttl: u32,
}

/// An order opened and not finished.
#[derive(Debug, Clone)]
pub struct OrderRow {
    pub url: String,
    pub directory: String,
    pub host: String,
    pub label: String,
}

/// Where the state lives: a directory holding `state.db` and the lock file, or a PostgreSQL
/// database (`postgresql://…`) whose connection holds the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Dir(PathBuf),
    Postgres(PostgresUrl),
}

impl Location {
    /// A `postgresql://` URL, else a directory.
    pub fn parse(s: &str) -> Result<Location, String> {
        if PostgresUrl::is_postgres(s) {
            PostgresUrl::parse(s).map(Location::Postgres)
        } else {
            Ok(Location::Dir(PathBuf::from(s)))
        }
    }

    /// Where a dry run keeps its own account, records and lock, apart from production's: a
    /// subdirectory, or a schema of its own in the same database.
    pub fn dry_run(&self) -> Location {
        match self {
            Location::Dir(d) => Location::Dir(d.join("dry-run")),
            Location::Postgres(u) => Location::Postgres(u.dry_run()),
        }
    }
}

/// The directory, or the URL without its password.
impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Dir(d) => write!(f, "{}", d.display()),
            Location::Postgres(u) => write!(f, "{u}"),
        }
    }
}

/// The open database. Writes are short and never held across an await.
pub struct State {
    db: Db,
    /// The database file, or the PostgreSQL URL without its password: what errors name.
    path: PathBuf,
    run_id: Mutex<Option<i64>>,
    /// The schema version of the open database: a read-only one is not migrated.
    version: usize,
}

/// The first schema version that records issuers (migration 3).
const ISSUERS_VERSION: usize = 3;
/// The schema version that added the lifecycle: an older database (read-only, for `plan`) has
/// nothing in flight.
const LIFECYCLE_VERSION: usize = 4;
/// The schema version that records what each order replaced (migration 5): in an older
/// database (read-only, for `plan`) no order did.
const REPLACES_VERSION: usize = 5;
/// The schema version that keeps the key files' stamps (migration 6): an older database
/// (read-only, for `plan`) has none, and every key is checked.
const KEY_STAMPS_VERSION: usize = 6;

/// What `run/local.rs` records as the order URL of certificates signed without a CA.
const SELF_SIGNED_ORDER: &str = "self-signed";
const INTERNAL_ORDER: &str = "internal-ca";

fn now() -> String {
    fmt_time(OffsetDateTime::now_utc())
}

/// RFC 3339 in UTC, whole seconds: sortable as text.
pub fn fmt_time(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_default()
}

fn parse_time(s: &str) -> OffsetDateTime {
    OffsetDateTime::parse(s, &Rfc3339).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The latest moment an event recorded at `s` can have happened: times are kept to the whole
/// second below ([`fmt_time`]), so a rate-limit window it fills is taken to free up to a
/// second late, never early.
fn latest(s: &str) -> OffsetDateTime {
    parse_time(s) + time::Duration::SECOND
}

/// Records the intermediates of every archived ACME chain as issuers of its order's directory.
fn issuers_from_archive(db: &Db) -> Result<(), String> {
    let rows = db.query(
        "SELECT o.directory, a.chain_pem, a.issued_at FROM archive a JOIN orders o ON o.url = a.order_url",
        &[],
    )?;
    for r in rows {
        let (directory, chain_pem, issued_at) = (r.text(0)?, r.text(1)?, r.text(2)?);
        let ders = crate::x509::pem_certificates(chain_pem.as_bytes()).unwrap_or_default();
        for i in ders
            .iter()
            .skip(1)
            .filter_map(|d| crate::x509::issuer_cert(d).ok())
            .filter(|i| i.is_ca)
        {
            insert_issuer(db, &directory, &i, &issued_at)?;
        }
    }
    Ok(())
}

/// Makes a new, migrated database at `path`: built beside it as `state.db.new` (0600, so
/// SQLite never creates it with the umask's mode) and renamed into place, so `state.db` is
/// never an empty file of certorch's making. An empty one is then damage (a failed copy or
/// restore), which [`refuse_empty`] refuses instead of starting afresh.
fn create(path: &Path) -> Result<(), Error> {
    let fresh = path.with_extension("db.new");
    let err = |e: &dyn std::fmt::Display| Error::Db {
        path: fresh.clone(),
        detail: e.to_string(),
    };
    // Left by a creation that was interrupted: never holds anything yet.
    match fs::remove_file(&fresh) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(err(&e)),
        _ => {}
    }
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&fresh)
        .map_err(|e| err(&e))?;
    let conn = Connection::open(&fresh).map_err(|e| err(&e))?;
    drop(State::setup_sqlite(conn, fresh.clone(), true)?);
    fs::rename(&fresh, path).map_err(|e| err(&e))
}

/// An existing `state.db` of zero bytes is refused: SQLite would take it for a new database.
fn refuse_empty(path: &Path) -> Result<(), Error> {
    match fs::metadata(path) {
        Ok(m) if m.len() == 0 => Err(Error::Corrupt {
            path: path.to_path_buf(),
            detail: "the file is empty (0 bytes), as a failed copy or restore leaves it".into(),
        }),
        _ => Ok(()),
    }
}

/// SQLite's `quick_check` of the whole file before anything reads or writes it: a file that is
/// not a database, or one truncated or overwritten in part, is refused as [`Error::Corrupt`]
/// rather than read half or written into. It reads every page once (milliseconds for a state
/// database of megabytes).
fn intact(conn: &Connection, path: &Path) -> Result<(), Error> {
    let corrupt = |detail: String| Error::Corrupt {
        path: path.to_path_buf(),
        detail,
    };
    let found: rusqlite::Result<Vec<String>> = conn
        .prepare("PRAGMA quick_check(5)")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect());
    match found {
        Ok(lines) if lines == ["ok"] => Ok(()),
        Ok(lines) => Err(corrupt(lines.join("; "))),
        Err(rusqlite::Error::SqliteFailure(e, msg))
            if matches!(
                e.code,
                rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt
            ) =>
        {
            Err(corrupt(msg.unwrap_or_else(|| e.to_string())))
        }
        Err(e) => Err(Error::Db {
            path: path.to_path_buf(),
            detail: e.to_string(),
        }),
    }
}

fn insert_issuer(
    db: &Db,
    directory: &str,
    i: &crate::x509::IssuerCert,
    seen: &str,
) -> Result<(), String> {
    db.execute(
        "INSERT INTO issuers (directory, fingerprint, subject_dn, ski, der, first_seen)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
        vals![
            directory,
            crate::x509::hex(&Sha256::digest(&i.der)),
            i.subject_dn.as_str(),
            i.ski.as_deref().map(crate::x509::hex),
            &i.der,
            seen
        ],
    )
    .map(|_| ())
}

impl State {
    /// Opens (creating it 0600 if needed) the database in `dir` and applies migrations.
    pub fn open(dir: &Path) -> Result<State, Error> {
        let path = dir.join(DB_FILE);
        let err = |e: &dyn std::fmt::Display| Error::Db {
            path: path.clone(),
            detail: e.to_string(),
        };
        fs::create_dir_all(dir).map_err(|e| err(&e))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| err(&e))?;
        if !path.exists() {
            create(&path)?;
        } else {
            // A database copied in or restored with the umask's mode: the account keys in it
            // must be private again before anything is written.
            let mode = fs::metadata(&path)
                .map_err(|e| err(&e))?
                .permissions()
                .mode()
                & 0o777;
            if mode != 0o600 {
                fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                    .map_err(|e| err(&e))?;
                eprintln!(
                    "warning: {} had mode {mode:04o}; set it to 0600, as it holds the ACME account keys",
                    path.display()
                );
            }
        }
        refuse_empty(&path)?;
        let conn = Connection::open(&path).map_err(|e| err(&e))?;
        Self::setup_sqlite(conn, path, true)
    }

    /// Opens the database read-only (`plan`, `status`): nothing is created or changed. A
    /// missing database reads as empty.
    pub fn open_read_only(dir: &Path) -> Result<State, Error> {
        let path = dir.join(DB_FILE);
        let err = |e: &dyn std::fmt::Display| Error::Db {
            path: path.clone(),
            detail: e.to_string(),
        };
        if !path.exists() {
            let conn = Connection::open_in_memory().map_err(|e| err(&e))?;
            return Self::setup_sqlite(conn, path, true);
        }
        refuse_empty(&path)?;
        let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| err(&e))?;
        Self::setup_sqlite(conn, path, false)
    }

    /// Connects to the PostgreSQL state at `url`, takes the run lock (a session-level advisory
    /// lock, held until this `State` is dropped or the process dies) and applies migrations.
    /// `Ok(None)`: another certorch holds the lock.
    pub fn open_postgres(url: &PostgresUrl) -> Result<Option<State>, Error> {
        let path = PathBuf::from(url.to_string());
        let err = |detail: String| Error::Db {
            path: path.clone(),
            detail,
        };
        let db = Db::Postgres(
            postgres::Client::connect(url, true).map_err(|e| connect_error(&path, e))?,
        );
        let locked = db
            .query("SELECT pg_try_advisory_lock(?1)", vals![url.lock_key()])
            .and_then(|r| r.first().ok_or_else(|| "no answer".to_string())?.int(0))
            .map_err(|e| err(format!("cannot take the run lock: {e}")))?;
        if locked == 0 {
            return Ok(None);
        }
        Self::setup(db, path, true).map(Some)
    }

    /// Connects to the PostgreSQL state at `url` to read (`plan`, `status`): no lock, nothing
    /// created or changed. A database certorch never wrote reads as empty.
    pub fn open_postgres_read_only(url: &PostgresUrl) -> Result<State, Error> {
        let path = PathBuf::from(url.to_string());
        let err = |detail: String| Error::Db {
            path: path.clone(),
            detail,
        };
        let db = Db::Postgres(
            postgres::Client::connect(url, false).map_err(|e| connect_error(&path, e))?,
        );
        if db.schema_version().map_err(err)? == 0 {
            let conn = Connection::open_in_memory().map_err(|e| err(e.to_string()))?;
            return Self::setup_sqlite(conn, path, true);
        }
        Self::setup(db, path, false)
    }

    fn setup_sqlite(conn: Connection, path: PathBuf, migrate: bool) -> Result<State, Error> {
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| Error::Db {
                path: path.clone(),
                detail: e.to_string(),
            })?;
        intact(&conn, &path)?;
        Self::setup(Db::Sqlite(Mutex::new(conn)), path, migrate)
    }

    fn setup(db: Db, path: PathBuf, migrate: bool) -> Result<State, Error> {
        let err = |detail: String| Error::Db {
            path: path.clone(),
            detail,
        };
        let version = db.schema_version().map_err(err)?;
        if version as usize > schema::MIGRATIONS.len() {
            return Err(Error::TooNew {
                path,
                found: version,
                known: schema::MIGRATIONS.len(),
            });
        }
        let mut version = version as usize;
        if migrate && version < schema::MIGRATIONS.len() {
            let migrated = db.begin().and_then(|()| {
                for m in &schema::MIGRATIONS[version..] {
                    if db.is_postgres() {
                        db.batch(&schema::postgres(m))?;
                    } else {
                        db.batch(m)?;
                    }
                }
                if version < ISSUERS_VERSION {
                    // Parsing PEM is not SQL's: the intermediates of chains archived before
                    // migration 3 are recorded here, once.
                    issuers_from_archive(&db)?;
                }
                db.set_schema_version(schema::MIGRATIONS.len() as i64)?;
                db.batch("COMMIT")
            });
            if let Err(e) = migrated {
                // Nothing of the migrations is kept; the error is the migration's.
                if let Err(r) = db.batch("ROLLBACK") {
                    tracing::debug!("rollback after a failed migration: {r}");
                }
                return Err(err(e));
            }
            version = schema::MIGRATIONS.len();
        }
        Ok(State {
            db,
            path,
            run_id: Mutex::new(None),
            version,
        })
    }

    fn read_err(&self, detail: String) -> Error {
        Error::Db {
            path: self.path.clone(),
            detail,
        }
    }

    fn write_err(&self, detail: String) -> Error {
        Error::Write {
            path: self.path.clone(),
            detail,
        }
    }

    /// The rows of a query, each made into a `T` by `f`.
    fn rows<T>(
        &self,
        sql: &str,
        params: &[Value],
        f: impl Fn(&Row) -> Result<T, String>,
    ) -> Result<Vec<T>, Error> {
        self.db
            .query(sql, params)
            .and_then(|rows| rows.iter().map(&f).collect())
            .map_err(|e| self.read_err(e))
    }

    /// The first row of a query, made into a `T` by `f`.
    fn row<T>(
        &self,
        sql: &str,
        params: &[Value],
        f: impl Fn(&Row) -> Result<T, String>,
    ) -> Result<Option<T>, Error> {
        Ok(self.rows(sql, params, f)?.into_iter().next())
    }

    /// Runs a write; its failure is [`Error::Write`], which stops the step.
    fn exec(&self, sql: &str, params: &[Value]) -> Result<u64, Error> {
        self.db.execute(sql, params).map_err(|e| self.write_err(e))
    }

    fn run_id(&self) -> Option<i64> {
        *self.run_id.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The stored credentials (JSON) of the account at `directory`.
    pub fn account(&self, directory: &str) -> Result<Option<String>, Error> {
        self.row(
            "SELECT credentials FROM accounts WHERE directory = ?1",
            vals![directory],
            |r| r.text(0),
        )
    }

    /// Stores a new account's credentials.
    pub fn save_account(
        &self,
        directory: &str,
        credentials: &str,
        contact: &[String],
    ) -> Result<(), Error> {
        let contact = serde_json::to_string(contact).unwrap_or_default();
        self.exec(
            "INSERT INTO accounts (directory, credentials, contact, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (directory) DO UPDATE SET credentials = excluded.credentials,
                contact = excluded.contact, created_at = excluded.created_at",
            vals![directory, credentials, contact, now()],
        )
        .map(|_| ())
    }

    /// Replaces the stored credentials of the account at `directory` (after a key rollover),
    /// keeping when it was registered.
    pub fn update_account_credentials(
        &self,
        directory: &str,
        credentials: &str,
    ) -> Result<(), Error> {
        match self.exec(
            "UPDATE accounts SET credentials = ?2 WHERE directory = ?1",
            vals![directory, credentials],
        )? {
            1 => Ok(()),
            n => Err(self.write_err(format!(
                "{n} accounts for {directory} where there should be one"
            ))),
        }
    }

    /// Records the start of a run.
    pub fn begin_run(&self, command: &str) -> Result<i64, Error> {
        let id = self
            .db
            .query(
                "INSERT INTO runs (command, pid, started_at) VALUES (?1, ?2, ?3) RETURNING id",
                vals![command, std::process::id(), now()],
            )
            .and_then(|r| {
                r.first()
                    .ok_or_else(|| "no id returned".to_string())?
                    .int(0)
            })
            .map_err(|e| self.write_err(e))?;
        *self.run_id.lock().unwrap_or_else(|p| p.into_inner()) = Some(id);
        Ok(id)
    }

    /// Records the end of the current run.
    pub fn finish_run(&self, result: &str) -> Result<(), Error> {
        let id = self.run_id();
        self.exec(
            "UPDATE runs SET finished_at = ?1, result = ?2 WHERE id = ?3",
            vals![now(), result, id],
        )
        .map(|_| ())
    }

    /// Appends to the audit log.
    pub fn audit(
        &self,
        host: &str,
        label: &str,
        action: &str,
        result: &str,
        detail: &str,
    ) -> Result<(), Error> {
        let id = self.run_id();
        self.exec(
            "INSERT INTO audit (at, run_id, host, label, action, result, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            vals![now(), id, host, label, action, result, detail],
        )
        .map(|_| ())
    }

    /// Records an order before its challenges are answered; `replaces`: the ARI identifier of
    /// the certificate the order named as the one it replaces (RFC 9773 §5).
    pub fn record_order(
        &self,
        url: &str,
        directory: &str,
        host: &str,
        label: &str,
        names: &[String],
        replaces: Option<&str>,
    ) -> Result<(), Error> {
        let id = self.run_id().unwrap_or(0);
        let names = serde_json::to_string(names).unwrap_or_default();
        self.exec(
            "INSERT INTO orders (url, run_id, directory, host, label, names, status, created_at, updated_at, replaces)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'open', ?7, ?7, ?8)
             ON CONFLICT (url) DO UPDATE SET run_id = excluded.run_id, directory = excluded.directory,
                host = excluded.host, label = excluded.label, names = excluded.names,
                status = excluded.status, created_at = excluded.created_at, updated_at = excluded.updated_at,
                replaces = excluded.replaces",
            vals![url, id, directory, host, label, names, now(), replaces],
        )
        .map(|_| ())
    }

    /// Marks an order `issued` or `abandoned`.
    pub fn set_order_status(&self, url: &str, status: &str) -> Result<(), Error> {
        self.exec(
            "UPDATE orders SET status = ?1, updated_at = ?2 WHERE url = ?3",
            vals![status, now(), url],
        )
        .map(|_| ())
    }

    /// Orders a previous run opened and never finished.
    pub fn open_orders(&self) -> Result<Vec<OrderRow>, Error> {
        self.rows(
            "SELECT url, directory, host, label FROM orders WHERE status = 'open' ORDER BY created_at",
            &[],
            |r| {
                Ok(OrderRow {
                    url: r.text(0)?,
                    directory: r.text(1)?,
                    host: r.text(2)?,
                    label: r.text(3)?,
                })
            },
        )
    }

    /// Records TXT records before they are published; returns their row ids.
    pub fn record_txt(
        &self,
        server: &str,
        rows: &[(String, String, String)],
        ttl: u32,
    ) -> Result<Vec<i64>, Error> {
        let id = self.run_id().unwrap_or(0);
        let mut ids = Vec::new();
        for (zone, name, value) in rows {
            let row = self
                .db
                .query(
                    "INSERT INTO txt_records (run_id, server, zone, name, value, ttl, published_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
                    vals![id, server, zone, name, value, ttl, now()],
                )
                .and_then(|r| {
                    r.first()
                        .ok_or_else(|| "no id returned".to_string())?
                        .int(0)
                })
                .map_err(|e| self.write_err(e))?;
            ids.push(row);
        }
        Ok(ids)
    }

    /// Forgets TXT records once withdrawn.
    pub fn remove_txt(&self, ids: &[i64]) -> Result<(), Error> {
        for id in ids {
            self.exec("DELETE FROM txt_records WHERE id = ?1", vals![*id])?;
        }
        Ok(())
    }

    /// TXT records a previous run published and never withdrew.
    pub fn leftover_txt(&self) -> Result<Vec<TxtRow>, Error> {
        self.rows(
            "SELECT id, server, zone, name, value, ttl FROM txt_records ORDER BY id",
            &[],
            |r| {
                Ok(TxtRow {
                    id: r.int(0)?,
                    zone: r.text(2)?,
                    name: r.text(3)?,
                    value: r.text(4)?,
                    ttl: u32::try_from(r.int(5)?).map_err(|e| e.to_string())?,
                })
            },
        )
    }

    /// Records a deployed certificate and archives its chain. Who signed it follows from
    /// `order_url` (the order's directory, or a local signer); for an ACME certificate the
    /// chain's intermediates are recorded as issuers of that directory.
    #[allow(clippy::too_many_arguments)]
    pub fn record_issued(
        &self,
        host: &str,
        label: &str,
        names: &[String],
        key_type: &str,
        leaf: &crate::x509::CertInfo,
        order_url: &str,
        chain_pem: &str,
        deployed_to: &[String],
    ) -> Result<(), Error> {
        let names_json = serde_json::to_string(names).unwrap_or_default();
        let deployed = serde_json::to_string(deployed_to).unwrap_or_default();
        let (nb, na, t) = (fmt_time(leaf.not_before), fmt_time(leaf.not_after), now());
        // The leaf is first; what follows it signed it (or signed its signer).
        let intermediates: Vec<crate::x509::IssuerCert> =
            crate::x509::pem_certificates(chain_pem.as_bytes())
                .unwrap_or_default()
                .iter()
                .skip(1)
                .filter_map(|der| crate::x509::issuer_cert(der).ok())
                .filter(|i| i.is_ca)
                .collect();
        let (issuer, directory): (&str, Option<String>) = match order_url {
            SELF_SIGNED_ORDER => ("self-signed", None),
            INTERNAL_ORDER => ("internal", None),
            url => (
                "acme",
                self.db
                    .query_opt("SELECT directory FROM orders WHERE url = ?1", vals![url])
                    .and_then(|r| r.map(|r| r.text(0)).transpose())
                    .map_err(|e| self.write_err(e))?,
            ),
        };
        self.exec(
            "INSERT INTO certificates (host, label, names, key_type, serial, fingerprint, not_before, not_after,
                ari_start, ari_end, ari_checked, deployed_to, last_result, updated_at, issuer, directory)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, NULL, NULL, ?9, 'issued', ?10, ?11, ?12)
             ON CONFLICT (host, label) DO UPDATE SET names = excluded.names, key_type = excluded.key_type,
                serial = excluded.serial, fingerprint = excluded.fingerprint,
                not_before = excluded.not_before, not_after = excluded.not_after,
                ari_start = NULL, ari_end = NULL, ari_checked = NULL,
                deployed_to = excluded.deployed_to, last_result = excluded.last_result,
                updated_at = excluded.updated_at, issuer = excluded.issuer, directory = excluded.directory",
            vals![host, label, names_json.as_str(), key_type, leaf.serial.as_str(), leaf.fingerprint.as_str(), nb, na,
                deployed, t.as_str(), issuer, directory.as_deref()],
        )?;
        if let Some(d) = &directory {
            for i in &intermediates {
                insert_issuer(&self.db, d, i, &t).map_err(|e| self.write_err(e))?;
            }
        }
        self.exec(
            "INSERT INTO archive (fingerprint, host, label, serial, names, not_before, not_after, order_url, chain_pem, issued_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING",
            vals![leaf.fingerprint.as_str(), host, label, leaf.serial.as_str(), names_json, fmt_time(leaf.not_before),
                fmt_time(leaf.not_after), order_url, chain_pem, t],
        )?;
        Ok(())
    }

    /// Runs `f` in one transaction: many small writes (a run's outcomes) with one sync to disk
    /// instead of one each. `f` must not open a transaction of its own. Nothing is kept unless
    /// every write in `f` succeeded and the commit did.
    pub fn batch<T>(&self, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
        self.db.begin().map_err(|e| self.write_err(e))?;
        let out = f();
        let end = if out.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let ended = self.db.batch(end).map_err(|e| self.write_err(e));
        if ended.is_err() && out.is_ok() {
            // A failed COMMIT leaves the transaction open: roll it back so the connection is usable.
            self.db.batch("ROLLBACK").map_err(|e| self.write_err(e))?;
        }
        let out = out?;
        ended?;
        Ok(out)
    }

    /// Sets the last result of a recorded certificate (`current`, `failed at …`).
    pub fn set_result(&self, host: &str, label: &str, result: &LastResult) -> Result<(), Error> {
        self.exec(
            "UPDATE certificates SET last_result = ?1, updated_at = ?2 WHERE host = ?3 AND label = ?4",
            vals![result.to_string(), now(), host, label],
        )
        .map(|_| ())
    }

    /// Stores the CA's suggested renewal window (RFC 9773).
    pub fn set_ari(
        &self,
        host: &str,
        label: &str,
        start: OffsetDateTime,
        end: OffsetDateTime,
    ) -> Result<(), Error> {
        self.exec(
            "UPDATE certificates SET ari_start = ?1, ari_end = ?2, ari_checked = ?3 WHERE host = ?4 AND label = ?5",
            vals![fmt_time(start), fmt_time(end), now(), host, label],
        )
        .map(|_| ())
    }

    /// What the certificate and key files of each certificate looked like when a survey last
    /// saw the key belong to it, by host and label.
    pub fn key_stamps(&self) -> Result<BTreeMap<(String, String), KeyStamp>, Error> {
        if self.version < KEY_STAMPS_VERSION {
            return Ok(BTreeMap::new());
        }
        let rows = self.rows(
            "SELECT host, label, stamp, fingerprint FROM key_stamps",
            &[],
            |r| {
                Ok((
                    (r.text(0)?, r.text(1)?),
                    KeyStamp {
                        stamp: r.text(2)?,
                        fingerprint: r.text(3)?,
                    },
                ))
            },
        )?;
        Ok(rows.into_iter().collect())
    }

    /// Records that the key of `host`/`label` belonged to its certificate `stamp.fingerprint`
    /// while its files looked like `stamp.stamp`.
    pub fn set_key_stamp(&self, host: &str, label: &str, stamp: &KeyStamp) -> Result<(), Error> {
        self.exec(
            "INSERT INTO key_stamps (host, label, stamp, fingerprint, checked_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (host, label) DO UPDATE SET stamp = excluded.stamp,
                fingerprint = excluded.fingerprint, checked_at = excluded.checked_at",
            vals![
                host,
                label,
                stamp.stamp.as_str(),
                stamp.fingerprint.as_str(),
                now()
            ],
        )
        .map(|_| ())
    }

    /// Every recorded certificate, by host and label.
    pub fn certificates(&self) -> Result<Vec<Recorded>, Error> {
        self.rows(
            &format!("SELECT host, label, names, key_type, serial, fingerprint, not_before, not_after, ari_start, ari_end,
                    deployed_to, last_result, updated_at, {} FROM certificates ORDER BY host, label",
                if self.version >= ISSUERS_VERSION { "issuer, directory" } else { "NULL, NULL" }),
            &[],
            |r| {
                Ok(Recorded {
                    host: r.text(0)?,
                    label: r.text(1)?,
                    names: serde_json::from_str(&r.text(2)?).unwrap_or_default(),
                    key_type: r.text(3)?,
                    serial: r.text(4)?,
                    fingerprint: r.text(5)?,
                    not_before: parse_time(&r.text(6)?),
                    not_after: parse_time(&r.text(7)?),
                    ari_start: r.opt_text(8)?.map(|s| parse_time(&s)),
                    ari_end: r.opt_text(9)?.map(|s| parse_time(&s)),
                    deployed_to: serde_json::from_str(&r.text(10)?).unwrap_or_default(),
                    last_result: LastResult::parse(&r.text(11)?),
                    updated_at: parse_time(&r.text(12)?),
                    issuer: r.opt_text(13)?,
                    directory: r.opt_text(14)?,
                })
            },
        )
    }

    /// Each order opened at `directory` since `since`, oldest first, and whether it named the
    /// certificate it replaced (ARI).
    pub fn order_times_since(
        &self,
        directory: &str,
        since: OffsetDateTime,
    ) -> Result<Vec<PastOrder>, Error> {
        self.rows(
            &format!(
                "SELECT created_at, {} FROM orders WHERE directory = ?1 AND created_at >= ?2 ORDER BY created_at",
                self.replaces_column("")
            ),
            vals![directory, fmt_time(since)],
            |r| {
                Ok(PastOrder {
                    at: latest(&r.text(0)?),
                    renewal: r.opt_text(1)?.is_some(),
                })
            },
        )
    }

    /// Each certificate ordered at `directory` and issued since `since`, with its names
    /// (sorted), and whether its order named the certificate it replaced (ARI).
    pub fn issued_since(
        &self,
        directory: &str,
        since: OffsetDateTime,
    ) -> Result<Vec<PastIssue>, Error> {
        self.rows(
            &format!(
                "SELECT a.issued_at, a.names, {} FROM archive a JOIN orders o ON o.url = a.order_url
                 WHERE o.directory = ?1 AND a.issued_at >= ?2",
                self.replaces_column("o.")
            ),
            vals![directory, fmt_time(since)],
            |r| {
                let mut names: Vec<String> = serde_json::from_str(&r.text(1)?).unwrap_or_default();
                names.sort();
                Ok(PastIssue {
                    at: latest(&r.text(0)?),
                    names,
                    renewal: r.opt_text(2)?.is_some(),
                })
            },
        )
    }

    /// The orders' `replaces` column (prefixed with `table`), or NULL in a database from before
    /// migration 5 (read-only), where no order recorded it.
    fn replaces_column(&self, table: &str) -> String {
        if self.version >= REPLACES_VERSION {
            format!("{table}replaces")
        } else {
            "NULL".into()
        }
    }

    /// Certificates whose latest entry in the audit log is a deferral, with its detail
    /// (`until <time>: <limit>`).
    pub fn deferrals(&self) -> Result<Vec<(String, String, String)>, Error> {
        self.rows(
            "SELECT host, label, detail FROM audit a WHERE action = 'defer'
             AND id = (SELECT max(id) FROM audit b WHERE b.host = a.host AND b.label = a.label)",
            &[],
            |r| Ok((r.text(0)?, r.text(1)?, r.text(2)?)),
        )
    }

    /// Failed validations per host/label since `since` (from the audit log).
    pub fn failed_validations_since(
        &self,
        since: OffsetDateTime,
    ) -> Result<Vec<(String, String)>, Error> {
        self.rows(
            "SELECT host, label FROM audit WHERE action = 'validate' AND result = 'failed' AND at >= ?1",
            vals![fmt_time(since)],
            |r| Ok((r.text(0)?, r.text(1)?)),
        )
    }
}

impl State {
    /// The archived chain (PEM) of the certificate with `fingerprint`.
    pub fn archived_chain(&self, fingerprint: &str) -> Result<Option<String>, Error> {
        self.row(
            "SELECT chain_pem FROM archive WHERE fingerprint = ?1",
            vals![fingerprint],
            |r| r.text(0),
        )
    }

    /// Forgets the account at `directory` (after it was deactivated at the CA).
    pub fn delete_account(&self, directory: &str) -> Result<(), Error> {
        self.exec(
            "DELETE FROM accounts WHERE directory = ?1",
            vals![directory],
        )
        .map(|_| ())
    }

    /// When the account at `directory` was registered.
    pub fn account_created(&self, directory: &str) -> Result<Option<String>, Error> {
        self.row(
            "SELECT created_at FROM accounts WHERE directory = ?1",
            vals![directory],
            |r| r.text(0),
        )
    }
}

impl State {
    /// The internal CA's certificate and key (PEM), if one was made.
    pub fn internal_ca(&self) -> Result<Option<(String, crate::secret::Secret<String>)>, Error> {
        self.row(
            "SELECT cert_pem, key_pem FROM internal_ca WHERE id = 1",
            &[],
            |r| Ok((r.text(0)?, crate::secret::Secret::new(r.text(1)?))),
        )
    }

    /// The internal CA's certificate (PEM), if one was made; not its key.
    pub fn internal_ca_cert(&self) -> Result<Option<String>, Error> {
        self.row("SELECT cert_pem FROM internal_ca WHERE id = 1", &[], |r| {
            r.text(0)
        })
    }

    /// The intermediates certorch received from each ACME directory: (directory, DER).
    pub fn issuers(&self) -> Result<Vec<(String, Vec<u8>)>, Error> {
        if self.version < ISSUERS_VERSION {
            // A read-only database from before migration 3: none recorded yet.
            return Ok(Vec::new());
        }
        self.rows(
            "SELECT directory, der FROM issuers ORDER BY first_seen",
            &[],
            |r| Ok((r.text(0)?, r.blob(1)?)),
        )
    }

    /// Stores a new internal CA.
    pub fn save_internal_ca(
        &self,
        cert_pem: &str,
        key_pem: &crate::secret::Secret<String>,
    ) -> Result<(), Error> {
        self.exec(
            "INSERT INTO internal_ca (id, cert_pem, key_pem, created_at) VALUES (1, ?1, ?2, ?3)",
            vals![cert_pem, key_pem.expose().as_str(), now()],
        )
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::params;

    /// Issue 12: a state write whose result is dropped let a run on a full disk report success.
    /// No `let _ =` and no `unwrap_or_default()`/`.ok()` may swallow a call into the state.
    #[test]
    fn no_state_write_is_dropped() {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    out.push(p);
                }
            }
        }
        let mut files = Vec::new();
        walk(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        let mut dropped = Vec::new();
        for f in files {
            let text = fs::read_to_string(&f).unwrap();
            for (n, line) in text.lines().enumerate() {
                let l = line.trim();
                let calls_state = l.contains("state.") || l.contains("state()");
                let swallowed = l.starts_with("let _ =")
                    || l.contains(".unwrap_or_default()")
                    || l.ends_with(".ok();");
                if calls_state && swallowed {
                    dropped.push(format!("{}:{}: {l}", f.display(), n + 1));
                }
            }
        }
        assert!(
            dropped.is_empty(),
            "state writes dropped:\n{}",
            dropped.join("\n")
        );
    }
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn created_private_and_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(&dir.path().join("st")).unwrap();
        let mode = fs::metadata(dir.path().join("st").join(DB_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        s.begin_run("run").unwrap();
        s.record_order(
            "https://ca/o/1",
            "https://ca/dir",
            "h",
            "c",
            &["a.example.org".into()],
            None,
        )
        .unwrap();
        assert_eq!(s.open_orders().unwrap().len(), 1);
        s.set_order_status("https://ca/o/1", "abandoned").unwrap();
        assert!(s.open_orders().unwrap().is_empty());
        let ids = s
            .record_txt(
                "127.0.0.1:53",
                &[("z.".into(), "n.z.".into(), "v".into())],
                60,
            )
            .unwrap();
        assert_eq!(s.leftover_txt().unwrap().len(), 1);
        s.remove_txt(&ids).unwrap();
        assert!(s.leftover_txt().unwrap().is_empty());
        drop(s);
        // Reopening applies nothing twice; read-only sees the same data.
        let r = State::open_read_only(&dir.path().join("st")).unwrap();
        assert_eq!(
            r.order_times_since("https://ca/dir", OffsetDateTime::UNIX_EPOCH)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn a_missing_database_reads_as_empty_and_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let r = State::open_read_only(dir.path()).unwrap();
        assert!(r.certificates().unwrap().is_empty());
        assert!(!dir.path().join(DB_FILE).exists());
    }

    #[test]
    fn who_signed_is_recorded_with_the_intermediates_of_the_directory() {
        use crate::plan::issuer::tests::{ca, leaf};
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(dir.path()).unwrap();
        s.begin_run("run").unwrap();
        let inter = ca("Pebble Intermediate");
        let l = leaf(&["a.example.org"], Some(&inter));
        s.record_order("https://ca/o/1", "https://ca/dir", "h", "c", &[], None)
            .unwrap();
        let chain = crate::x509::to_pem(&[l.der.clone(), inter.cert.der.clone()]);
        s.record_issued(
            "h",
            "c",
            &[],
            "ecdsa-p256",
            &l,
            "https://ca/o/1",
            &chain,
            &[],
        )
        .unwrap();
        let own = leaf(&["b.example.org"], None);
        let own_pem = crate::x509::to_pem(std::slice::from_ref(&own.der));
        s.record_issued(
            "h",
            "d",
            &[],
            "ecdsa-p256",
            &own,
            "self-signed",
            &own_pem,
            &[],
        )
        .unwrap();
        let recs = s.certificates().unwrap();
        assert_eq!(
            (recs[0].issuer.as_deref(), recs[0].directory.as_deref()),
            (Some("acme"), Some("https://ca/dir"))
        );
        assert_eq!(
            (recs[1].issuer.as_deref(), recs[1].directory.as_deref()),
            (Some("self-signed"), None)
        );
        assert_eq!(
            s.issuers().unwrap(),
            vec![("https://ca/dir".to_string(), inter.cert.der.clone())]
        );
    }

    /// A database from before migration 3: its certificates learn who signed them from the
    /// archive and the orders; `plan`'s read-only view of an unmigrated one still reads.
    #[test]
    fn migration_3_fills_in_the_signer_of_older_rows() {
        use crate::plan::issuer::tests::{ca, leaf};
        let inter = ca("R3");
        let l = leaf(&["a.example.org"], Some(&inter));
        let chain = crate::x509::to_pem(&[l.der.clone(), inter.cert.der.clone()]);
        let dir = tempfile::tempdir().unwrap();
        let c = Connection::open(dir.path().join(DB_FILE)).unwrap();
        for m in &schema::MIGRATIONS[..2] {
            c.execute_batch(m).unwrap();
        }
        c.pragma_update(None, "user_version", 2).unwrap();
        let t = "2026-11-01T00:00:00Z";
        for (label, fp, url) in [
            ("a", "f1", "https://ca/o/1"),
            ("b", "f2", "self-signed"),
            ("c", "f3", "internal-ca"),
            ("d", "f4", "https://ca/o/gone"),
        ] {
            c.execute(
                "INSERT INTO certificates VALUES ('h', ?1, '[]', 'ecdsa-p256', '01', ?2, ?3, ?3, NULL, NULL, NULL, '[]', 'issued', ?3)",
                params![label, fp, t],
            )
            .unwrap();
            let pem = if label == "a" { chain.as_str() } else { "" };
            c.execute(
                "INSERT INTO archive VALUES (?1, 'h', ?2, '01', '[]', ?3, ?3, ?4, ?5, ?3)",
                params![fp, label, t, url, pem],
            )
            .unwrap();
        }
        c.execute(
            "INSERT INTO orders VALUES ('https://ca/o/1', 1, 'https://ca/dir', 'h', 'a', '[]', 'issued', ?1, ?1)",
            [t],
        )
        .unwrap();
        drop(c);
        let r = State::open_read_only(dir.path()).unwrap();
        assert!(r.certificates().unwrap().iter().all(|c| c.issuer.is_none()));
        assert!(r.issuers().unwrap().is_empty());
        drop(r);
        let s = State::open(dir.path()).unwrap();
        let got: Vec<(Option<String>, Option<String>)> = s
            .certificates()
            .unwrap()
            .into_iter()
            .map(|c| (c.issuer, c.directory))
            .collect();
        assert_eq!(
            got,
            vec![
                (Some("acme".into()), Some("https://ca/dir".into())),
                (Some("self-signed".into()), None),
                (Some("internal".into()), None),
                (None, None),
            ]
        );
        // The archived chain's intermediate is known for its order's directory.
        assert_eq!(
            s.issuers().unwrap(),
            vec![("https://ca/dir".to_string(), inter.cert.der.clone())]
        );
    }

    /// An order that named what it replaced is read back as an exempt ARI renewal, in the
    /// orders and in what was issued; a database from before migration 5, read without
    /// migrating (`plan`), has none.
    #[test]
    fn orders_record_what_they_replaced() {
        use crate::plan::issuer::tests::{ca, leaf};
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(dir.path()).unwrap();
        s.begin_run("run").unwrap();
        let inter = ca("Pebble Intermediate");
        let names = vec!["a.example.org".to_string()];
        for (url, replaces, label) in [
            ("https://ca/o/new", None, "a"),
            ("https://ca/o/ari", Some("aki.serial"), "b"),
        ] {
            s.record_order(url, "https://ca/dir", "h", label, &names, replaces)
                .unwrap();
            let l = leaf(&["a.example.org"], Some(&inter));
            let chain = crate::x509::to_pem(&[l.der.clone(), inter.cert.der.clone()]);
            s.record_issued("h", label, &names, "ecdsa-p256", &l, url, &chain, &[])
                .unwrap();
        }
        let since = OffsetDateTime::now_utc() - time::Duration::hours(1);
        let orders: Vec<bool> = s
            .order_times_since("https://ca/dir", since)
            .unwrap()
            .iter()
            .map(|o| o.renewal)
            .collect();
        assert_eq!(orders, [false, true]);
        let mut issued: Vec<bool> = s
            .issued_since("https://ca/dir", since)
            .unwrap()
            .iter()
            .map(|i| i.renewal)
            .collect();
        issued.sort();
        assert_eq!(issued, [false, true]);
        drop(s);

        // A version-4 database: read-only, nothing migrated, no order a renewal.
        let old = tempfile::tempdir().unwrap();
        let c = Connection::open(old.path().join(DB_FILE)).unwrap();
        for m in &schema::MIGRATIONS[..4] {
            c.execute_batch(m).unwrap();
        }
        c.pragma_update(None, "user_version", 4).unwrap();
        c.execute(
            "INSERT INTO orders VALUES ('https://ca/o/1', 1, 'https://ca/dir', 'h', 'a', '[]', 'issued', ?1, ?1)",
            [fmt_time(OffsetDateTime::now_utc())],
        )
        .unwrap();
        drop(c);
        let r = State::open_read_only(old.path()).unwrap();
        assert_eq!(
            r.order_times_since("https://ca/dir", since)
                .unwrap()
                .iter()
                .map(|o| o.renewal)
                .collect::<Vec<_>>(),
            [false]
        );
        drop(r);
        // Migrated: the old order stays counted.
        let s = State::open(old.path()).unwrap();
        assert!(!s.order_times_since("https://ca/dir", since).unwrap()[0].renewal);
    }

    /// Times are stored to the whole second below; the schedule reads each event as the
    /// latest moment it can have happened, so a window it fills never frees early.
    #[test]
    fn past_events_are_read_no_earlier_than_they_happened() {
        use crate::plan::issuer::tests::{ca, leaf};
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(dir.path()).unwrap();
        s.begin_run("run").unwrap();
        let names = vec!["a.example.org".to_string()];
        let inter = ca("Pebble Intermediate");
        let before = OffsetDateTime::now_utc();
        s.record_order("https://ca/o/1", "https://ca/dir", "h", "a", &names, None)
            .unwrap();
        let l = leaf(&["a.example.org"], Some(&inter));
        let chain = crate::x509::to_pem(&[l.der.clone(), inter.cert.der.clone()]);
        s.record_issued(
            "h",
            "a",
            &names,
            "ecdsa-p256",
            &l,
            "https://ca/o/1",
            &chain,
            &[],
        )
        .unwrap();
        let after = OffsetDateTime::now_utc();
        let since = before - time::Duration::hours(1);
        let order = s.order_times_since("https://ca/dir", since).unwrap()[0].at;
        let issued = s.issued_since("https://ca/dir", since).unwrap()[0].at;
        for at in [order, issued] {
            assert!(at >= before, "{at} is before the event ({before})");
            assert!(
                at <= after + time::Duration::SECOND,
                "{at} is after {after} + 1 s"
            );
        }
    }

    #[test]
    fn newer_schemas_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(State::open(dir.path()).unwrap());
        let c = Connection::open(dir.path().join(DB_FILE)).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        drop(c);
        assert!(matches!(
            State::open(dir.path()),
            Err(Error::TooNew { found: 99, .. })
        ));
    }
}
