//! The little the state needs from a database, for SQLite and PostgreSQL alike: run a
//! statement, run a query and get its rows, run a batch of statements, begin/commit. SQL is
//! written once with `?N` placeholders (translated to `$N` for PostgreSQL) in the subset both
//! engines share (`ON CONFLICT … DO UPDATE`, `RETURNING`); only the DDL differs
//! (`schema::postgres`).

use std::sync::Mutex;

use rusqlite::Connection;

/// One parameter or column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Text(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Text(s)
    }
}
impl From<&String> for Value {
    fn from(s: &String) -> Value {
        Value::Text(s.clone())
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}
impl From<u32> for Value {
    fn from(i: u32) -> Value {
        Value::Int(i64::from(i))
    }
}
impl From<&[u8]> for Value {
    fn from(b: &[u8]) -> Value {
        Value::Blob(b.to_vec())
    }
}
impl From<&Vec<u8>> for Value {
    fn from(b: &Vec<u8>) -> Value {
        Value::Blob(b.clone())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(o: Option<T>) -> Value {
        o.map_or(Value::Null, Into::into)
    }
}

/// `vals![a, b, …]`: the parameters of a statement.
macro_rules! vals {
    ($($v:expr),* $(,)?) => { &[$($crate::state::db::Value::from($v)),*][..] };
}
pub(crate) use vals;

/// One result row.
#[derive(Debug, Clone)]
pub struct Row(pub Vec<Value>);

impl Row {
    fn at(&self, i: usize) -> Result<&Value, String> {
        self.0
            .get(i)
            .ok_or_else(|| format!("no column {i} in a row of {}", self.0.len()))
    }

    pub fn opt_text(&self, i: usize) -> Result<Option<String>, String> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Text(s) => Ok(Some(s.clone())),
            Value::Int(n) => Ok(Some(n.to_string())),
            Value::Blob(_) => Err(format!("column {i}: a blob where text was expected")),
        }
    }

    pub fn text(&self, i: usize) -> Result<String, String> {
        self.opt_text(i)?
            .ok_or_else(|| format!("column {i}: NULL where text was expected"))
    }

    pub fn opt_int(&self, i: usize) -> Result<Option<i64>, String> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Int(n) => Ok(Some(*n)),
            v => Err(format!("column {i}: {v:?} where an integer was expected")),
        }
    }

    pub fn int(&self, i: usize) -> Result<i64, String> {
        self.opt_int(i)?
            .ok_or_else(|| format!("column {i}: NULL where an integer was expected"))
    }

    pub fn opt_blob(&self, i: usize) -> Result<Option<Vec<u8>>, String> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Blob(b) => Ok(Some(b.clone())),
            Value::Text(s) => Ok(Some(s.clone().into_bytes())),
            Value::Int(_) => Err(format!("column {i}: an integer where a blob was expected")),
        }
    }

    pub fn blob(&self, i: usize) -> Result<Vec<u8>, String> {
        self.opt_blob(i)?
            .ok_or_else(|| format!("column {i}: NULL where a blob was expected"))
    }
}

/// The open database.
pub enum Db {
    Sqlite(Mutex<Connection>),
    Postgres(super::postgres::Client),
}

impl Db {
    /// Runs one statement; returns the number of rows it changed.
    pub fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, String> {
        match self {
            Db::Sqlite(c) => {
                let c = c.lock().unwrap_or_else(|p| p.into_inner());
                c.execute(sql, rusqlite::params_from_iter(params.iter()))
                    .map(|n| n as u64)
                    .map_err(|e| e.to_string())
            }
            Db::Postgres(c) => c.execute(&dollar_placeholders(sql), params.to_vec()),
        }
    }

    /// Runs one query; returns its rows.
    pub fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, String> {
        match self {
            Db::Sqlite(c) => {
                let c = c.lock().unwrap_or_else(|p| p.into_inner());
                let mut st = c.prepare(sql).map_err(|e| e.to_string())?;
                let n = st.column_count();
                let rows = st
                    .query_map(rusqlite::params_from_iter(params.iter()), |r| {
                        (0..n)
                            .map(|i| r.get_ref(i).map(from_sqlite))
                            .collect::<rusqlite::Result<Vec<Value>>>()
                            .map(Row)
                    })
                    .map_err(|e| e.to_string())?;
                rows.collect::<rusqlite::Result<Vec<Row>>>()
                    .map_err(|e| e.to_string())
            }
            Db::Postgres(c) => c.query(&dollar_placeholders(sql), params.to_vec()),
        }
    }

    /// The first row of a query, if any.
    pub fn query_opt(&self, sql: &str, params: &[Value]) -> Result<Option<Row>, String> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Runs statements without parameters, separated by `;`.
    pub fn batch(&self, sql: &str) -> Result<(), String> {
        match self {
            Db::Sqlite(c) => {
                let c = c.lock().unwrap_or_else(|p| p.into_inner());
                c.execute_batch(sql).map_err(|e| e.to_string())
            }
            Db::Postgres(c) => c.batch(sql.to_string()),
        }
    }

    /// Begins a transaction that writes (SQLite takes its write lock at once).
    pub fn begin(&self) -> Result<(), String> {
        match self {
            Db::Sqlite(_) => self.batch("BEGIN IMMEDIATE"),
            Db::Postgres(_) => self.batch("BEGIN"),
        }
    }

    /// The number of migrations applied.
    pub fn schema_version(&self) -> Result<i64, String> {
        match self {
            Db::Sqlite(_) => self
                .query("PRAGMA user_version", &[])?
                .first()
                .ok_or("PRAGMA user_version returned nothing")?
                .int(0),
            Db::Postgres(_) => {
                let exists = self
                    .query("SELECT to_regclass('certorch_schema') IS NOT NULL", &[])?
                    .first()
                    .map(|r| r.int(0))
                    .transpose()?
                    .unwrap_or(0);
                if exists == 0 {
                    return Ok(0);
                }
                Ok(self
                    .query_opt("SELECT version FROM certorch_schema", &[])?
                    .map(|r| r.int(0))
                    .transpose()?
                    .unwrap_or(0))
            }
        }
    }

    /// Records the number of migrations applied (inside the migrating transaction).
    pub fn set_schema_version(&self, version: i64) -> Result<(), String> {
        match self {
            Db::Sqlite(_) => self.batch(&format!("PRAGMA user_version = {version}")),
            Db::Postgres(_) => {
                self.batch(
                    "CREATE TABLE IF NOT EXISTS certorch_schema (version BIGINT NOT NULL);
                     DELETE FROM certorch_schema",
                )?;
                self.execute(
                    "INSERT INTO certorch_schema (version) VALUES (?1)",
                    vals![version],
                )
                .map(|_| ())
            }
        }
    }

    /// Whether this is PostgreSQL (its DDL differs).
    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }
}

fn from_sqlite(v: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Text(f.to_string()),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(*i),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

/// `?N` placeholders as PostgreSQL's `$N`. The state's SQL has no `?` in a literal.
pub fn dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        assert_eq!(
            dollar_placeholders("UPDATE t SET a = ?1, b = ?12 WHERE c = ?1"),
            "UPDATE t SET a = $1, b = $12 WHERE c = $1"
        );
    }

    #[test]
    fn sqlite_round_trips_every_kind_of_value() {
        let db = Db::Sqlite(Mutex::new(Connection::open_in_memory().unwrap()));
        db.batch("CREATE TABLE t (i INTEGER, s TEXT, b BLOB, n TEXT)")
            .unwrap();
        db.execute(
            "INSERT INTO t VALUES (?1, ?2, ?3, ?4)",
            vals![7i64, "x", &b"\x00\xff"[..], None::<String>],
        )
        .unwrap();
        let r = db
            .query_opt("SELECT i, s, b, n FROM t", &[])
            .unwrap()
            .unwrap();
        assert_eq!(r.int(0).unwrap(), 7);
        assert_eq!(r.text(1).unwrap(), "x");
        assert_eq!(r.blob(2).unwrap(), vec![0, 255]);
        assert_eq!(r.opt_text(3).unwrap(), None);
        assert!(r.text(3).is_err());
    }
}
