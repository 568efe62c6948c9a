//! Every SQL statement Herald runs lives under this module. Functions that touch a shop's rows
//! take the shop id and filter by it: no query can return another shop's data.

pub mod alerts;
pub mod api_keys;
pub mod attempts;
pub mod deliveries;
pub mod endpoints;
pub mod event_types;
pub mod events;
pub mod retention;
pub mod shops;
pub mod users;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::str::FromStr;
use std::time::Duration;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in the store, as the layers above must tell it apart: a conflict is the
/// caller's (a 409 saying what is taken), the rest is Herald's (logged, a 500).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A write would duplicate what must be unique; the message says what, for the user.
    #[error("{0}")]
    Conflict(String),
    /// A stored value does not parse as what it must be.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                Error::Conflict(conflict_message(db.message()).into())
            }
            _ => Error::Database(err),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Error::Corrupt(err.to_string())
    }
}

/// What a violated unique constraint means to the person who caused it, from the database's
/// message (SQLite names `table.column`). Emails are the one unique value people choose; the
/// other writes that could collide are upserts.
fn conflict_message(db_message: &str) -> &'static str {
    if db_message.contains("users.email") {
        "A user with this email already exists."
    } else {
        "This already exists."
    }
}

/// The database behind Herald. Cheap to clone.
///
/// SQLite has one writer at a time. Every write goes through `writer`, a pool of one
/// connection, so writers queue in the pool (an async hand-over) instead of colliding in
/// SQLite's busy handler, which sleeps; reads use `pool` and run beside it (WAL).
#[derive(Clone, Debug)]
pub struct Store {
    pub pool: SqlitePool,
    pub writer: SqlitePool,
}

/// Which store a `HERALD_DATABASE_URL` names.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreUrl {
    /// `sqlite://path` or `sqlite:path`: the embedded default.
    Sqlite(String),
    /// `postgres://…` or `postgresql://…`.
    Postgres(String),
}

impl StoreUrl {
    /// Reads a database URL by its scheme, refusing what Herald cannot open (never taking it
    /// as a file name: `postgres://db/herald` would otherwise become a local directory
    /// `postgres:`). Errors name the variable and the scheme, never the URL (it may carry a
    /// password).
    pub fn parse(url: &str) -> Result<StoreUrl, String> {
        let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("sqlite") => Ok(StoreUrl::Sqlite(url.to_string())),
            Some("postgres" | "postgresql") => Ok(StoreUrl::Postgres(url.to_string())),
            Some(other) if !other.is_empty() && !other.contains(['/', '\\', '.']) => Err(format!(
                "HERALD_DATABASE_URL: unsupported scheme `{other}:`; use sqlite://path/to/herald.db \
                 (the embedded default) or postgres://user@host/database"
            )),
            _ => Err(
                "HERALD_DATABASE_URL must be a URL: sqlite://path/to/herald.db (the embedded \
                 default) or postgres://user@host/database"
                    .into(),
            ),
        }
    }
}

impl Store {
    /// Opens the store a `HERALD_DATABASE_URL` names.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        match StoreUrl::parse(url).map_err(anyhow::Error::msg)? {
            StoreUrl::Sqlite(url) => Self::connect_sqlite(&url).await,
            StoreUrl::Postgres(_) => anyhow::bail!(
                "HERALD_DATABASE_URL: PostgreSQL is not supported by this build of Herald yet; \
                 use sqlite://path/to/herald.db"
            ),
        }
    }

    /// Opens (creating if needed) the SQLite database at `url` in WAL mode. WAL with
    /// `synchronous = NORMAL` survives a killed process without losing a committed write.
    async fn connect_sqlite(url: &str) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        if let Some(parent) = options.get_filename().parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent)?;
            }
        }
        // A file on this machine does not go stale between uses: no ping before each acquire
        // (it would cost a round trip to the connection's thread every time).
        // The writer's page cache (in KiB) holds the queue's hot pages across batches; with
        // SQLite's default of 2 MiB it re-reads them from the file. Readers keep the default:
        // a reader drops its whole cache whenever the database changed since its last read.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(options.clone().pragma("cache_size", "-65536"))
            .await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        Ok(Store { pool, writer })
    }

    /// Applies the migrations embedded in the binary.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.writer)
            .await?;
        Ok(())
    }

    /// True when the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_is_read_by_its_scheme() {
        assert_eq!(
            StoreUrl::parse("sqlite://data/herald.db"),
            Ok(StoreUrl::Sqlite("sqlite://data/herald.db".into()))
        );
        assert_eq!(
            StoreUrl::parse("sqlite::memory:"),
            Ok(StoreUrl::Sqlite("sqlite::memory:".into()))
        );
        for pg in [
            "postgres://h/db",
            "postgresql://u:p@h:5432/db",
            "POSTGRES://h/db",
        ] {
            assert_eq!(StoreUrl::parse(pg), Ok(StoreUrl::Postgres(pg.into())));
        }
        let mysql = StoreUrl::parse("mysql://u:secret@h/db").unwrap_err();
        assert!(
            mysql.contains("HERALD_DATABASE_URL") && mysql.contains("`mysql:`"),
            "{mysql}"
        );
        assert!(!mysql.contains("secret"), "{mysql}");
        for bare in ["data/herald.db", "", "./x:y"] {
            let e = StoreUrl::parse(bare).unwrap_err();
            assert!(e.contains("must be a URL"), "{bare}: {e}");
        }
    }
}
