//! The state on PostgreSQL: where it is (a `postgresql://` URL, its password from a file or
//! the environment and never printed), and a connection owned by a thread of its own.
//!
//! Why a thread: the `postgres` crate (sfackler's, the synchronous face of tokio-postgres) runs
//! each call on a runtime of its own, which cannot be entered from a tokio worker; the state's
//! API is synchronous (its SQLite calls block the caller for as long as a write takes), so each
//! call is sent to the thread that owns the client and the caller waits for the answer, as it
//! waits for SQLite. One connection per certorch process: the run lock is a session-level
//! advisory lock on it, released by the server when the connection ends, however it ends.

use std::fmt;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;

use postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

use super::db::{Row, Value};
use super::pgpass;
use super::postgres_tls::{self, Plan, Settings, SslMode};

/// The schema a dry run keeps its own state in, beside the real one in the same database.
const DRY_RUN_SCHEMA: &str = "certorch_dry_run";

/// A PostgreSQL state location, parsed from its URL.
#[derive(Clone, PartialEq, Eq)]
pub struct Url {
    url: url::Url,
    /// `password_file=`: a file whose content (less a final newline) is the password.
    password_file: Option<PathBuf>,
    /// The schema to use instead of the default search path (a dry run's).
    schema: Option<&'static str>,
    /// `sslmode`, `sslrootcert`, `sslcert`, `sslkey`.
    tls: Settings,
}

impl fmt::Debug for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// The URL without its password: what every message shows.
impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut u = self.url.clone();
        if u.password().is_some() && u.set_password(Some("redacted")).is_err() {
            return f.write_str("postgresql://(a URL that cannot be shown without its password)");
        }
        write!(f, "{u}")?;
        if let Some(s) = self.schema {
            write!(f, " (schema {s})")?;
        }
        Ok(())
    }
}

/// The query parameters certorch understands; anything else is refused, not ignored.
const PARAMS: &[&str] = &[
    "host",
    "port",
    "user",
    "dbname",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "password_file",
    "connect_timeout",
    "application_name",
];

impl Url {
    /// Whether `s` names a PostgreSQL state (and not a directory).
    pub fn is_postgres(s: &str) -> bool {
        s.starts_with("postgresql://") || s.starts_with("postgres://")
    }

    /// Parses and checks a `postgresql://` URL. Errors never repeat the password.
    pub fn parse(s: &str) -> Result<Url, String> {
        let url = url::Url::parse(s).map_err(|e| format!("not a PostgreSQL URL: {e}"))?;
        let mut password_file = None;
        let mut tls = Settings::default();
        let (mut cert, mut key) = (None, None);
        for (k, v) in url.query_pairs() {
            if !PARAMS.contains(&k.as_ref()) {
                return Err(format!(
                    "unknown parameter `{k}` in the PostgreSQL URL (known: {})",
                    PARAMS.join(", ")
                ));
            }
            match k.as_ref() {
                "password_file" => password_file = Some(PathBuf::from(v.as_ref())),
                "sslmode" => {
                    tls.mode = SslMode::parse(&v).ok_or_else(|| {
                        format!("sslmode={v} is not a mode (known: {})", SslMode::NAMES)
                    })?;
                }
                "sslrootcert" => tls.root = Some(PathBuf::from(v.as_ref())),
                "sslcert" => cert = Some(PathBuf::from(v.as_ref())),
                "sslkey" => key = Some(PathBuf::from(v.as_ref())),
                _ => {}
            }
        }
        tls.client = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => return Err("sslcert and sslkey go together: give both, or neither".into()),
        };
        let u = Url {
            url,
            password_file,
            schema: None,
            tls,
        };
        u.config()?;
        Ok(u)
    }

    /// The same database, with a dry run's own schema.
    pub fn dry_run(&self) -> Url {
        Url {
            schema: Some(DRY_RUN_SCHEMA),
            ..self.clone()
        }
    }

    /// The advisory lock's key: one per schema, fixed across versions.
    pub fn lock_key(&self) -> i64 {
        use sha2::{Digest, Sha256};
        let d = Sha256::digest(format!("certorch run lock {}", self.schema.unwrap_or("")));
        i64::from_be_bytes(d[..8].try_into().unwrap_or([0; 8]))
    }

    /// The connection's configuration, with the password read from its file or `PGPASSWORD`.
    fn config(&self) -> Result<postgres::Config, String> {
        let mut c = postgres::Config::new();
        c.application_name("certorch");
        let decode = |s: &str| {
            percent_decode(s).map_err(|()| "the PostgreSQL URL has a bad %-escape".to_string())
        };
        if let Some(h) = self.url.host_str().filter(|h| !h.is_empty()) {
            c.host(&decode(h)?);
        }
        if let Some(p) = self.url.port() {
            c.port(p);
        }
        if !self.url.username().is_empty() {
            c.user(&decode(self.url.username())?);
        }
        let db = self.url.path().trim_start_matches('/');
        if !db.is_empty() {
            c.dbname(&decode(db)?);
        }
        for (k, v) in self.url.query_pairs() {
            match k.as_ref() {
                "host" => {
                    c.host(&v);
                }
                "port" => {
                    c.port(v.parse().map_err(|_| format!("port={v} is not a port"))?);
                }
                "user" => {
                    c.user(&v);
                }
                "dbname" => {
                    c.dbname(&v);
                }
                "connect_timeout" => {
                    let s: u64 = v
                        .parse()
                        .map_err(|_| format!("connect_timeout={v} is not a number of seconds"))?;
                    c.connect_timeout(std::time::Duration::from_secs(s));
                }
                "application_name" => {
                    c.application_name(&v);
                }
                _ => {}
            }
        }
        if c.get_hosts().is_empty() {
            c.host("/run/postgresql");
        }
        if c.get_user().is_none() {
            c.user("certorch");
        }
        if let Some(pw) = self.url.password() {
            c.password(decode(pw)?);
        }
        Ok(c)
    }

    /// The configuration with its password: from `password_file`, else the URL, else
    /// `PGPASSWORD`, else libpq's password file (`PGPASSFILE` or `~/.pgpass`); none for peer
    /// or trust authentication.
    fn config_with_password(&self) -> Result<postgres::Config, String> {
        let mut c = self.config()?;
        if let Some(f) = &self.password_file {
            let pw = std::fs::read_to_string(f).map_err(|e| {
                format!(
                    "cannot read the PostgreSQL password file {}: {e}",
                    f.display()
                )
            })?;
            c.password(pw.trim_end_matches(['\n', '\r']));
        } else if self.url.password().is_none()
            && let Some(pw) = std::env::var_os("PGPASSWORD")
        {
            c.password(pw.as_encoded_bytes());
        } else if self.url.password().is_none()
            && let Some(file) = pgpass::path(
                std::env::var_os("PGPASSFILE").map(PathBuf::from),
                std::env::var_os("HOME").map(PathBuf::from),
            )
        {
            let host = match c.get_hosts().first() {
                Some(postgres::config::Host::Tcp(h)) => h.clone(),
                // libpq's name for the default socket directory.
                Some(postgres::config::Host::Unix(p))
                    if p == std::path::Path::new("/run/postgresql")
                        || p == std::path::Path::new("/var/run/postgresql")
                        || p == std::path::Path::new("/tmp") =>
                {
                    "localhost".into()
                }
                Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
                None => "localhost".into(),
            };
            let port = c.get_ports().first().copied().unwrap_or(5432).to_string();
            let user = c.get_user().unwrap_or("certorch").to_string();
            let database = c.get_dbname().unwrap_or(&user).to_string();
            let target = pgpass::Target {
                host: &host,
                port: &port,
                database: &database,
                user: &user,
            };
            match pgpass::read(&file, &target) {
                Ok(Some(pw)) => {
                    c.password(pw);
                }
                Ok(None) => {}
                Err(warning) => eprintln!("warning: {warning}"),
            }
        }
        Ok(c)
    }
}

/// A connection that could not be made: the reason, and for TLS (or its absence) what to do.
pub struct ConnectError {
    pub detail: String,
    pub tls_hint: Option<String>,
}

impl From<String> for ConnectError {
    fn from(detail: String) -> ConnectError {
        ConnectError {
            detail,
            tls_hint: None,
        }
    }
}

impl From<postgres_tls::Failure> for ConnectError {
    fn from(f: postgres_tls::Failure) -> ConnectError {
        ConnectError {
            detail: f.detail,
            tls_hint: Some(f.hint),
        }
    }
}

/// Connects as libpq would for the URL's sslmode: TLS first or plain first, and the other
/// when the first is refused.
fn open(config: &postgres::Config, tls: &Settings) -> Result<postgres::Client, ConnectError> {
    use postgres::config::SslMode as Mode;
    let unix_only = config
        .get_hosts()
        .iter()
        .all(|h| matches!(h, postgres::config::Host::Unix(_)));
    let server = match (config.get_hosts().first(), config.get_ports().first()) {
        (Some(postgres::config::Host::Tcp(h)), Some(p)) => format!("{h}:{p}"),
        (Some(postgres::config::Host::Tcp(h)), None) => format!("{h}:5432"),
        (Some(postgres::config::Host::Unix(p)), _) => p.display().to_string(),
        (None, _) => "PostgreSQL".into(),
    };
    let plain = || {
        let mut c = config.clone();
        c.ssl_mode(Mode::Disable);
        c.connect(postgres::NoTls)
    };
    let with_tls = |connector: &postgres_tls::Connector, mode| {
        let mut c = config.clone();
        c.ssl_mode(mode);
        c.connect(connector.clone())
    };
    // The server turned this connection away for what it is (pg_hba.conf: hostssl, hostnossl).
    let turned_away = |e: &postgres::Error| {
        e.code() == Some(&postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
    };
    let result = match tls.plan(unix_only)? {
        Plan::Plain => plain(),
        Plan::PlainThenTls(connector) => match plain() {
            Err(e) if turned_away(&e) => with_tls(&connector, Mode::Require),
            other => other,
        },
        Plan::TlsThenPlain(connector) => match with_tls(&connector, Mode::Prefer) {
            Err(e) if turned_away(&e) || postgres_tls::failure(&e).is_some() => plain(),
            other => other,
        },
        Plan::Tls(connector) => with_tls(&connector, Mode::Require),
    };
    result.map_err(|e| {
        if let Some(f) = postgres_tls::failure(&e) {
            return f.clone().into();
        }
        if postgres_tls::is_no_tls(&e) {
            return postgres_tls::Failure {
                detail: format!("PostgreSQL at {server} does not offer TLS, and sslmode={} requires it", tls.mode.name()),
                hint: "turn TLS on in PostgreSQL (ssl = on, with ssl_cert_file and ssl_key_file), or connect over a Unix socket (host=/run/postgresql)".into(),
            }
            .into();
        }
        let detail = describe(&e);
        if turned_away(&e) && detail.contains("no encryption") {
            return ConnectError {
                detail,
                tls_hint: Some(format!(
                    "PostgreSQL at {server} takes this user only over TLS: connect with sslmode=verify-full, and sslrootcert=FILE naming the CA of its certificate"
                )),
            };
        }
        detail.into()
    })
}

fn percent_decode(s: &str) -> Result<String, ()> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = s.get(i + 1..i + 3).ok_or(())?;
            out.push(u8::from_str_radix(h, 16).map_err(|_| ())?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

type Job = Box<dyn FnOnce(&mut postgres::Client) + Send>;

/// A connection owned by its own thread. Dropping it closes the connection (and so releases
/// the advisory lock).
pub struct Client {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Client {
    /// Connects; `schema` (a dry run's) becomes the search path, created if `create`.
    pub fn connect(url: &Url, create: bool) -> Result<Client, ConnectError> {
        let config = url.config_with_password()?;
        let tls = url.tls.clone();
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready, connected) = mpsc::channel::<Result<(), ConnectError>>();
        let schema = url.schema;
        let thread = std::thread::Builder::new()
            .name("certorch-postgres".into())
            .spawn(move || {
                let mut client = match open(&config, &tls) {
                    Ok(c) => c,
                    Err(e) => {
                        if ready.send(Err(e)).is_err() {
                            // The caller is gone: nothing to tell.
                        }
                        return;
                    }
                };
                let setup = match schema {
                    Some(s) if create => client.batch_execute(&format!(
                        "CREATE SCHEMA IF NOT EXISTS {s}; SET search_path TO {s}"
                    )),
                    Some(s) => client.batch_execute(&format!("SET search_path TO {s}")),
                    None => Ok(()),
                };
                if ready.send(setup.map_err(|e| describe(&e).into())).is_err() {
                    return;
                }
                for job in queue {
                    job(&mut client);
                }
            })
            .map_err(|e| format!("cannot start the PostgreSQL connection's thread: {e}"))?;
        let client = Client {
            jobs: Some(jobs),
            thread: Some(thread),
        };
        connected
            .recv()
            .map_err(|_| "the PostgreSQL connection's thread ended".to_string())??;
        Ok(client)
    }

    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut postgres::Client) -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let gone = || "the connection to PostgreSQL is gone".to_string();
        let (answer, answered) = mpsc::channel();
        self.jobs
            .as_ref()
            .ok_or_else(gone)?
            .send(Box::new(move |c| {
                if answer.send(f(c)).is_err() {
                    // The caller is gone: nothing to tell.
                }
            }))
            .map_err(|_| gone())?;
        answered.recv().map_err(|_| gone())?
    }

    pub fn execute(&self, sql: &str, params: Vec<Value>) -> Result<u64, String> {
        let sql = sql.to_string();
        self.call(move |c| {
            let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
            c.execute(sql.as_str(), &refs).map_err(|e| describe(&e))
        })
    }

    pub fn query(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, String> {
        let sql = sql.to_string();
        self.call(move |c| {
            let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
            let rows = c.query(sql.as_str(), &refs).map_err(|e| describe(&e))?;
            rows.iter()
                .map(|r| {
                    (0..r.len())
                        .map(|i| r.try_get::<_, Value>(i).map_err(|e| describe(&e)))
                        .collect::<Result<Vec<Value>, String>>()
                        .map(Row)
                })
                .collect()
        })
    }

    pub fn batch(&self, sql: String) -> Result<(), String> {
        self.call(move |c| c.batch_execute(&sql).map_err(|e| describe(&e)))
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // Closing the queue ends the thread, which drops (closes) the connection.
        self.jobs.take();
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            eprintln!("warning: the PostgreSQL connection's thread panicked");
        }
    }
}

/// A PostgreSQL error as one line: the server's message and detail, or the client's error with
/// its cause. Neither holds the password.
fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{}: {}", db.severity(), db.message());
        if let Some(d) = db.detail() {
            s.push_str(&format!(" ({d})"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(&format!(": {c}"));
        src = c.source();
    }
    s
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                _ => i.to_sql(ty, out),
            },
            Value::Text(s) => s.as_str().to_sql(ty, out),
            Value::Blob(b) => b.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Value, Box<dyn std::error::Error + Sync + Send>> {
        Ok(match *ty {
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Int(i64::from(i32::from_sql(ty, raw)?)),
            Type::INT2 => Value::Int(i64::from(i16::from_sql(ty, raw)?)),
            Type::BOOL => Value::Int(i64::from(bool::from_sql(ty, raw)?)),
            Type::BYTEA => Value::Blob(raw.to_vec()),
            _ => Value::Text(String::from_utf8(raw.to_vec())?),
        })
    }

    fn from_sql_null(_: &Type) -> Result<Value, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Value::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_never_shown() {
        let u = Url::parse("postgresql://certorch:s3cr%2Fet@db.example.org:5433/certorch").unwrap();
        assert_eq!(
            u.to_string(),
            "postgresql://certorch:redacted@db.example.org:5433/certorch"
        );
        assert!(!format!("{u:?}").contains("s3cr"));
        let c = u.config().unwrap();
        assert_eq!(c.get_password(), Some(&b"s3cr/et"[..]));
        assert_eq!(c.get_ports(), &[5433]);
    }

    #[test]
    fn unknown_parameters_and_modes_are_refused() {
        let e = Url::parse("postgresql://h/db?sslmode=required").unwrap_err();
        assert!(e.contains("sslmode=required is not a mode"), "{e}");
        let e = Url::parse("postgresql://h/db?sslmode=verify-full&sslcert=/c.pem").unwrap_err();
        assert!(e.contains("sslcert and sslkey go together"), "{e}");
        let u =
            Url::parse("postgresql://h/db?sslmode=verify-full&sslrootcert=/etc/certorch/pg-ca.pem")
                .unwrap();
        assert_eq!(u.tls.mode, SslMode::VerifyFull);
        assert_eq!(
            u.tls.root.as_deref(),
            Some(std::path::Path::new("/etc/certorch/pg-ca.pem"))
        );
        assert_eq!(
            Url::parse("postgresql://h/db").unwrap().tls.mode,
            SslMode::Prefer
        );
        let e = Url::parse("postgresql://h/db?passwd=x").unwrap_err();
        assert!(e.contains("unknown parameter `passwd`"), "{e}");
        assert!(!e.contains("=x"), "{e}");
    }

    #[test]
    fn a_socket_directory_and_a_password_file() {
        let u = Url::parse(
            "postgresql:///certorch?host=/run/postgresql&password_file=/etc/certorch/pg.pass",
        )
        .unwrap();
        let c = u.config().unwrap();
        assert_eq!(c.get_dbname(), Some("certorch"));
        assert!(matches!(
            c.get_hosts(),
            [postgres::config::Host::Unix(p)] if p == std::path::Path::new("/run/postgresql")
        ));
        assert_eq!(
            u.password_file.as_deref(),
            Some(std::path::Path::new("/etc/certorch/pg.pass"))
        );
        assert_ne!(u.lock_key(), u.dry_run().lock_key());
    }
}
