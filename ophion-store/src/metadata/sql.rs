//! The SQL the metadata's features write, whichever database holds it.
//!
//! A feature states its statements once, in the subset SQLite and
//! PostgreSQL share: numbered parameters `?1`, `?2` (sent to PostgreSQL as
//! `$1`, `$2`), `INSERT … ON CONFLICT … DO NOTHING | DO UPDATE`,
//! `RETURNING id` for generated keys, integers for flags, `CAST(sum(x) AS
//! BIGINT)` where PostgreSQL would answer a `numeric`, and an optional
//! filter written `(col = ?1 OR ?1 IS NULL)`: PostgreSQL infers a
//! parameter's type where it first meets it, and `?1 IS NULL` says none. Only the tables
//! (their migrations) are written once per database. Values cross as
//! [`Value`]s: what SQLite stores, converted on the PostgreSQL side to the
//! type the statement's parameter or column has.
//!
//! The interface follows `rusqlite`'s names (`execute`, `query_row`,
//! `query_map`, `transaction`, [`params!`](crate::params),
//! [`OptionalExtension`]) so a statement reads the same as before.

use std::ops::Deref;

/// A statement's result.
pub type Result<T, E = SqlError> = std::result::Result<T, E>;

pub use crate::error::SqlError;

/// A value as stored: SQLite's storage classes.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// A 64-bit integer (flags are 0 and 1).
    Integer(i64),
    /// A double.
    Real(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

/// Which database a connection speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The embedded SQLite file.
    Sqlite,
    /// A PostgreSQL database shared by a cluster's nodes.
    Postgres,
}

/// A value a statement can take as a parameter.
pub trait ToSql {
    /// The value to bind.
    fn to_sql(&self) -> Value;
}

/// A value a row's column can be read as.
pub trait FromSql: Sized {
    /// Converts the stored value.
    fn from_sql(v: &Value) -> Result<Self>;
}

macro_rules! integer {
    ($($t:ty),*) => {$(
        impl ToSql for $t {
            fn to_sql(&self) -> Value {
                Value::Integer(*self as i64)
            }
        }
        impl FromSql for $t {
            fn from_sql(v: &Value) -> Result<Self> {
                match v {
                    Value::Integer(i) => <$t>::try_from(*i)
                        .map_err(|_| SqlError::Conversion(format!("{i} out of range for {}", stringify!($t)))),
                    other => Err(mismatch(other, stringify!($t))),
                }
            }
        }
    )*};
}
integer!(i64, i32, u32, u16, u8, usize, u64);

fn mismatch(v: &Value, want: &str) -> SqlError {
    SqlError::Conversion(format!("{v:?} read as {want}"))
}

impl ToSql for bool {
    fn to_sql(&self) -> Value {
        Value::Integer(i64::from(*self))
    }
}
impl FromSql for bool {
    fn from_sql(v: &Value) -> Result<Self> {
        match v {
            Value::Integer(i) => Ok(*i != 0),
            other => Err(mismatch(other, "bool")),
        }
    }
}
impl ToSql for f64 {
    fn to_sql(&self) -> Value {
        Value::Real(*self)
    }
}
impl FromSql for f64 {
    fn from_sql(v: &Value) -> Result<Self> {
        match v {
            Value::Real(x) => Ok(*x),
            Value::Integer(i) => Ok(*i as f64),
            other => Err(mismatch(other, "f64")),
        }
    }
}
impl ToSql for str {
    fn to_sql(&self) -> Value {
        Value::Text(self.to_owned())
    }
}
impl ToSql for String {
    fn to_sql(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl FromSql for String {
    fn from_sql(v: &Value) -> Result<Self> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            other => Err(mismatch(other, "text")),
        }
    }
}
impl ToSql for [u8] {
    fn to_sql(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}
impl ToSql for Vec<u8> {
    fn to_sql(&self) -> Value {
        Value::Blob(self.clone())
    }
}
impl FromSql for Vec<u8> {
    fn from_sql(v: &Value) -> Result<Self> {
        match v {
            Value::Blob(b) => Ok(b.clone()),
            other => Err(mismatch(other, "bytes")),
        }
    }
}
impl ToSql for Value {
    fn to_sql(&self) -> Value {
        self.clone()
    }
}
impl FromSql for Value {
    fn from_sql(v: &Value) -> Result<Self> {
        Ok(v.clone())
    }
}
impl<T: ToSql + ?Sized> ToSql for &T {
    fn to_sql(&self) -> Value {
        (**self).to_sql()
    }
}
impl<T: ToSql> ToSql for Option<T> {
    fn to_sql(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToSql::to_sql)
    }
}
impl<T: FromSql> FromSql for Option<T> {
    fn from_sql(v: &Value) -> Result<Self> {
        match v {
            Value::Null => Ok(None),
            v => T::from_sql(v).map(Some),
        }
    }
}

/// A statement's parameters, `?1` first.
pub type Params<'a> = &'a [&'a dyn ToSql];

/// Parameters for a statement: `params![a, b]` binds `?1` to `a` and `?2`
/// to `b`.
#[macro_export]
macro_rules! params {
    () => {
        &[] as &[&dyn $crate::metadata::sql::ToSql]
    };
    ($($p:expr),+ $(,)?) => {
        &[$(&$p as &dyn $crate::metadata::sql::ToSql),+] as &[&dyn $crate::metadata::sql::ToSql]
    };
}

/// What a statement's parameters may be given as: [`params!`](crate::params)
/// or an array of values of one type (`[id]`).
pub trait AsParams {
    /// Calls `f` with the parameters.
    fn with_params<R>(&self, f: impl FnOnce(Params<'_>) -> R) -> R;
}

impl AsParams for &[&dyn ToSql] {
    fn with_params<R>(&self, f: impl FnOnce(Params<'_>) -> R) -> R {
        f(self)
    }
}

impl<T: ToSql, const N: usize> AsParams for [T; N] {
    fn with_params<R>(&self, f: impl FnOnce(Params<'_>) -> R) -> R {
        let refs: Vec<&dyn ToSql> = self.iter().map(|p| p as &dyn ToSql).collect();
        f(&refs)
    }
}

macro_rules! tuple_params {
    ($(($($t:ident $i:tt),+))*) => {$(
        impl<$($t: ToSql),+> AsParams for ($($t,)+) {
            fn with_params<R>(&self, f: impl FnOnce(Params<'_>) -> R) -> R {
                f(&[$(&self.$i as &dyn ToSql),+])
            }
        }
    )*};
}
tuple_params! {
    (A 0)
    (A 0, B 1)
    (A 0, B 1, C 2)
    (A 0, B 1, C 2, D 3)
    (A 0, B 1, C 2, D 3, E 4)
    (A 0, B 1, C 2, D 3, E 4, F 5)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7)
}

/// One row of a result.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub(crate) Vec<Value>);

impl Row {
    /// Column `i` (from 0) as `T`.
    pub fn get<T: FromSql>(&self, i: usize) -> Result<T> {
        let v = self
            .0
            .get(i)
            .ok_or_else(|| SqlError::Conversion(format!("no column {i}")))?;
        T::from_sql(v).map_err(|e| match e {
            SqlError::Conversion(m) => SqlError::Conversion(format!("column {i}: {m}")),
            e => e,
        })
    }
}

/// A connection to the metadata database, used from its own thread.
pub trait Conn {
    /// The database behind it.
    fn dialect(&self) -> Dialect;
    /// Runs one statement; the number of rows it changed.
    fn exec(&self, sql: &str, params: Params<'_>) -> Result<usize>;
    /// Runs one statement; every row it returned.
    fn rows(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>>;
    /// Runs statements without parameters, separated by `;`.
    fn execute_batch(&self, sql: &str) -> Result<()>;
    /// Within a transaction, waits for other nodes' transactions holding
    /// lock `key` and holds it until this one ends (PostgreSQL's
    /// transaction-level advisory lock). A no-op on SQLite, where one
    /// process owns the database and its transactions run one at a time.
    fn lock(&self, key: i64) -> Result<()>;
}

impl dyn Conn + '_ {
    /// Runs one statement; the number of rows it changed.
    pub fn execute(&self, sql: &str, params: impl AsParams) -> Result<usize> {
        params.with_params(|p| self.exec(sql, p))
    }

    /// The first row of a statement, converted by `f`; [`SqlError::NoRows`]
    /// if none.
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: impl AsParams,
        f: impl FnOnce(&Row) -> Result<T>,
    ) -> Result<T> {
        let rows = params.with_params(|p| self.rows(sql, p))?;
        f(rows.first().ok_or(SqlError::NoRows)?)
    }

    /// Every row of a statement, each converted by `f`.
    pub fn query_map<T>(
        &self,
        sql: &str,
        params: impl AsParams,
        f: impl FnMut(&Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        params
            .with_params(|p| self.rows(sql, p))?
            .iter()
            .map(f)
            .collect()
    }

    /// A statement to run (once or more) with [`Statement::query_map`] or
    /// [`Statement::query_row`]. Both databases keep it prepared.
    pub fn prepare(&self, sql: &str) -> Result<Statement<'_>> {
        Ok(Statement {
            conn: self,
            sql: sql.to_owned(),
        })
    }

    /// Begins a transaction; it rolls back unless committed.
    pub fn transaction(&self) -> Result<Transaction<'_>> {
        self.execute_batch("BEGIN")?;
        Ok(Transaction {
            conn: self,
            open: true,
        })
    }
}

/// A statement to run again (`prepare` on a [`Conn`]).
pub struct Statement<'a> {
    conn: &'a (dyn Conn + 'a),
    sql: String,
}

impl std::fmt::Debug for Statement<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Statement").field("sql", &self.sql).finish()
    }
}

impl Statement<'_> {
    /// Runs it; each row converted by `f`.
    pub fn query_map<T>(
        &mut self,
        params: impl AsParams,
        f: impl FnMut(&Row) -> Result<T>,
    ) -> Result<std::vec::IntoIter<Result<T>>> {
        let rows = params.with_params(|p| self.conn.rows(&self.sql, p))?;
        Ok(rows.iter().map(f).collect::<Vec<_>>().into_iter())
    }

    /// Runs it; its first row converted by `f` ([`SqlError::NoRows`] if
    /// none).
    pub fn query_row<T>(
        &mut self,
        params: impl AsParams,
        f: impl FnOnce(&Row) -> Result<T>,
    ) -> Result<T> {
        self.conn.query_row(&self.sql, params, f)
    }
}

/// An open transaction: the connection's statements run in it until
/// [`Transaction::commit`]; dropped uncommitted, it rolls back.
pub struct Transaction<'a> {
    conn: &'a (dyn Conn + 'a),
    open: bool,
}

impl std::fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("open", &self.open)
            .finish_non_exhaustive()
    }
}

impl Transaction<'_> {
    /// Commits the transaction.
    pub fn commit(mut self) -> Result<()> {
        self.open = false;
        self.conn.execute_batch("COMMIT")
    }
}

impl<'a> Deref for Transaction<'a> {
    type Target = dyn Conn + 'a;
    fn deref(&self) -> &Self::Target {
        self.conn
    }
}

impl Conn for Transaction<'_> {
    fn dialect(&self) -> Dialect {
        self.conn.dialect()
    }
    fn exec(&self, sql: &str, params: Params<'_>) -> Result<usize> {
        self.conn.exec(sql, params)
    }
    fn rows(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        self.conn.rows(sql, params)
    }
    fn execute_batch(&self, sql: &str) -> Result<()> {
        self.conn.execute_batch(sql)
    }
    fn lock(&self, key: i64) -> Result<()> {
        self.conn.lock(key)
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// `query_row`'s missing row as `None`.
pub trait OptionalExtension<T> {
    /// `Ok(None)` for [`SqlError::NoRows`].
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(SqlError::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// `sql` with SQLite's numbered parameters (`?1`) as PostgreSQL's (`$1`)
/// and bare `?` numbered in order; quoted text and identifiers are left
/// alone.
pub fn numbered_parameters(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut quote: Option<char> = None;
    let mut last = 0u32;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '?' => {
                out.push('$');
                let mut digits = String::new();
                while let Some(d) = chars.next_if(char::is_ascii_digit) {
                    digits.push(d);
                }
                // SQLite's rule: a bare `?` is one past the largest so far.
                let n = digits.parse().unwrap_or(last + 1);
                last = last.max(n);
                out.push_str(&n.to_string());
            }
            None => out.push(c),
        }
    }
    out
}

/// Whether `s` is a plain lower-case SQL identifier (it is put in SQL text).
pub(crate) fn identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A SQLite migration as PostgreSQL's: keys SQLite assigns (`INTEGER
/// PRIMARY KEY`, with or without `AUTOINCREMENT`) become identity columns,
/// and SQLite's integers, reals and blobs PostgreSQL's `BIGINT`, `DOUBLE
/// PRECISION` and `BYTEA` (so every integer reads back as an `i64`).
/// Statements SQLite alone knows (triggers, `PRAGMA`, table rebuilds) are
/// not translated: a feature with those lists its own PostgreSQL
/// migrations.
pub fn postgres_ddl(sqlite: &str) -> String {
    const KEY: &str = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY";
    let mut out = sqlite
        .replace("INTEGER PRIMARY KEY AUTOINCREMENT", KEY)
        .replace("INTEGER PRIMARY KEY", KEY);
    for (from, to) in [
        ("INTEGER", "BIGINT"),
        ("REAL", "DOUBLE PRECISION"),
        ("BLOB", "BYTEA"),
    ] {
        out = replace_word(&out, from, to);
    }
    out
}

/// `text` with the whole word `word` (not inside a longer identifier)
/// replaced by `with`.
fn replace_word(text: &str, word: &str, with: &str) -> String {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(word) {
        let before = rest[..i].chars().next_back();
        let after = rest[i + word.len()..].chars().next();
        out.push_str(&rest[..i]);
        if before.is_some_and(ident) || after.is_some_and(ident) {
            out.push_str(word);
        } else {
            out.push_str(with);
        }
        rest = &rest[i + word.len()..];
    }
    out.push_str(rest);
    out
}

/// The advisory lock key of a name, the same on every node.
pub fn lock_key(name: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    h as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_tables_translate_to_postgres() {
        assert_eq!(
            postgres_ddl(
                "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER NOT NULL, \
                 r REAL, b BLOB, big_INTEGER TEXT, c INTEGER PRIMARY KEY CHECK (c = 1))"
            ),
            "CREATE TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, n BIGINT NOT NULL, \
             r DOUBLE PRECISION, b BYTEA, big_INTEGER TEXT, c BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY CHECK (c = 1))"
        );
    }

    #[test]
    fn parameters_are_renumbered_outside_quotes() {
        assert_eq!(
            numbered_parameters(
                "SELECT a FROM t WHERE b = ?1 AND c = 'it''s ?2' AND \"e?\" = ?12 AND d = ?"
            ),
            "SELECT a FROM t WHERE b = $1 AND c = 'it''s ?2' AND \"e?\" = $12 AND d = $13"
        );
        assert_eq!(
            numbered_parameters("VALUES (?, ?, ?2)"),
            "VALUES ($1, $2, $2)"
        );
    }
}
