//! Every SQL statement Herald runs lives under this module. Functions that touch a shop's rows
//! take the shop id and filter by it: no query can return another shop's data.

pub mod alerts;
pub mod api_keys;
pub mod attempts;
pub mod bulk;
pub mod cluster;
pub mod copy;
pub mod counters;
pub mod deliveries;
pub mod endpoints;
pub mod event_types;
pub mod events;
pub mod nodes;
pub mod retention;
pub mod sessions;
pub mod shops;
pub mod users;
mod wal_sync;

use prometheus_client::metrics::histogram::Histogram;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, PgPool, Postgres, Sqlite, SqlitePool};
use std::borrow::Cow;
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
    /// A commit could not be synced to disk: it is written, but may not survive a power loss.
    #[error("could not sync the database's WAL to disk: {0}")]
    Sync(std::sync::Arc<std::io::Error>),
}

impl From<std::sync::Arc<std::io::Error>> for Error {
    fn from(err: std::sync::Arc<std::io::Error>) -> Self {
        Error::Sync(err)
    }
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
    // SQLite names the column (`users.email`), PostgreSQL the index (`users_email`).
    if db_message.contains("users.email") || db_message.contains("users_email") {
        "A user with this email already exists."
    } else {
        "This already exists."
    }
}

/// Connections a node keeps to PostgreSQL unless told otherwise (besides one for listening to
/// the other nodes and one while it holds the retention lock).
pub const DEFAULT_PG_CONNECTIONS: u32 = 16;

/// When SQLite calls a commit done (`HERALD_SQLITE_SYNCHRONOUS`). `full` syncs the WAL to
/// disk after every commit before the caller goes on, so a 202 survives an OS crash or a power
/// loss; the sync runs beside the writer and is shared by the commits that finish together
/// (see [`wal_sync`]). `normal` syncs only at checkpoints: it survives a killed process but
/// may lose the last commits to a power loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SqliteSync {
    #[default]
    Full,
    Normal,
}

/// WAL pages after which the writer checkpoints by itself (SQLite's default is 1,000). The
/// engine checkpoints from a reader connection every [`CHECKPOINT_EVERY`] instead, so copying
/// pages into the database file and syncing it are off the writer's path; this is the
/// safety net for when nothing else does (the command line, a stalled checkpointer).
const WRITER_CHECKPOINT_PAGES: u32 = 16_384;

/// How long an SQLite connection waits for a lock before it fails.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long emptying the WAL ([`Store::truncate_wal`]) may hold writers back waiting for
/// readers before it gives up.
const WAL_TRUNCATE_WAIT: Duration = Duration::from_millis(50);

/// A statement on SQLite's writer taking longer than this is logged (at debug, target
/// `sqlx::query`): every other write waited for it.
const WRITER_SLOW_STATEMENT: Duration = Duration::from_millis(50);

/// SQLite's page cache of the writer and of each reader, in KiB. Both are part of Herald's
/// memory budget (the README's peak RSS figure): 8 MiB holds the queue's hot pages (the due
/// index and the newest rows); 16 MiB drained no faster.
const WRITER_CACHE_KIB: u32 = 8 * 1024;
const READER_CACHE_KIB: u32 = 1024;

/// Reader connections on SQLite. Each is a thread with its own page cache and allocator
/// heap; four keep the panel and the API lists answering while the engine reads. With eight
/// and a 16 MiB writer cache, 200,000 deliveries published and drained peaked 17 MiB higher
/// and no faster.
const READERS: u32 = 4;

/// A shop's number from its id, in SQL (`?` its id): events, deliveries and attempts name
/// their shop by its number (`shops.num`), a few bytes in every row and index entry instead
/// of the id.
pub(crate) const SHOP_NUM: &str = "(SELECT num FROM shops WHERE id = ?)";

/// [`SHOP_NUM`] up to its placeholder, for a query builder: push this, bind the id, push ")".
pub(crate) const SHOP_NUM_OPEN: &str = "(SELECT num FROM shops WHERE id = ";

/// How often the engine checkpoints SQLite's WAL into the database file.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// How a store is opened, beyond its URL.
#[derive(Clone, Copy, Debug)]
pub struct StoreOptions {
    /// Connections to PostgreSQL per node (`HERALD_DATABASE_CONNECTIONS`).
    pub pg_connections: u32,
    pub sqlite_sync: SqliteSync,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            pg_connections: DEFAULT_PG_CONNECTIONS,
            sqlite_sync: SqliteSync::Full,
        }
    }
}

/// The database behind Herald. Cheap to clone.
///
/// One interface over two backends. Statements are written once where the SQL is shared —
/// SQLite's syntax with `?` placeholders, which [`Dialect::sql`] turns into PostgreSQL's — and
/// once per backend where the two differ (JSON functions, the claim, purges by row address);
/// the row types are the same for both. The engine, the service and the web layer never know
/// which backend they have.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
    /// Names this process in the notifications it sends (see `cluster`): it does not wake
    /// itself with its own.
    tag: std::sync::Arc<str>,
    /// How long each hold of SQLite's one writer lasted (see [`WriterClock`]); nothing is
    /// observed on PostgreSQL, whose writers do not wait for one another.
    writer_holds: Histogram,
    /// How long each sync of SQLite's WAL took (`full`; see [`wal_sync`]): one per group of
    /// commits that finished together.
    wal_syncs: Histogram,
    /// Told when a bulk change was written down for the engine to work through.
    bulk_signal: std::sync::Arc<tokio::sync::Notify>,
}

/// The buckets of `herald_store_writer_hold_seconds`, in seconds: fine below 50 ms, where a
/// hold must stay, coarse above it.
pub const WRITER_HOLD_BUCKETS: [f64; 13] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

/// The buckets of `herald_store_wal_sync_seconds`, in seconds.
pub const WAL_SYNC_BUCKETS: [f64; 10] = [
    0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1,
];

/// Times the holds of SQLite's writer: every write waits while another holds it, so the
/// longest hold is how long a publish or an attempt's outcome may have to wait. The writer
/// pool has one connection, so one start time suffices; it is set when the connection is
/// handed out and read when it comes back.
#[derive(Clone, Debug)]
struct WriterClock {
    base: std::time::Instant,
    /// µs after `base` when the current hold began, 0 when nobody holds the writer.
    since: std::sync::Arc<std::sync::atomic::AtomicU64>,
    holds: Histogram,
}

impl WriterClock {
    fn new(holds: Histogram) -> Self {
        WriterClock {
            base: std::time::Instant::now(),
            since: Default::default(),
            holds,
        }
    }

    fn start(&self) {
        let now = self.base.elapsed().as_micros() as u64;
        self.since
            .store(now.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    fn stop(&self) {
        let since = self.since.swap(0, std::sync::atomic::Ordering::Relaxed);
        if since > 0 {
            let now = self.base.elapsed().as_micros() as u64;
            self.holds
                .observe(now.saturating_sub(since) as f64 / 1_000_000.0);
        }
    }
}

#[derive(Clone, Debug)]
enum Db {
    /// SQLite has one writer at a time. Every write goes through `writer`, a pool of one
    /// connection, so writers queue in the pool (an async hand-over) instead of colliding in
    /// SQLite's busy handler, which sleeps; reads use `pool` and run beside it (WAL).
    Sqlite {
        pool: SqlitePool,
        writer: SqlitePool,
        /// Syncs the WAL after each write when commits must be durable (`full`); `None` for
        /// `normal` and for a database in memory.
        wal: Option<wal_sync::WalSync>,
    },
    /// PostgreSQL takes concurrent writers: one pool for both.
    Postgres { pool: PgPool },
}

/// The SQL a statement must be sent in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// Herald's shared SQL as this backend takes it. Shared statements are written in
    /// SQLite's syntax: `?` and `?N` placeholders and `INDEXED BY` hints. For PostgreSQL the
    /// placeholders become `$N` (numbered as SQLite numbers them: a bare `?` is one more than
    /// the largest number so far) and the hints go; nothing inside a quoted literal changes.
    pub fn sql(self, sql: &str) -> Cow<'_, str> {
        match self {
            Dialect::Sqlite => Cow::Borrowed(sql),
            Dialect::Postgres => Cow::Owned(to_postgres(sql)),
        }
    }

    /// The store's name in machine-read answers (`/healthz`).
    pub fn id(self) -> &'static str {
        self.pick("sqlite", "postgresql")
    }

    /// The store's name for people (the Nodes page).
    pub fn label(self) -> &'static str {
        self.pick("SQLite", "PostgreSQL")
    }

    /// The statement written for this backend, where the two differ.
    pub fn pick<T>(self, sqlite: T, postgres: T) -> T {
        match self {
            Dialect::Sqlite => sqlite,
            Dialect::Postgres => postgres,
        }
    }
}

/// See [`Dialect::sql`].
fn to_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut chars = sql.chars().peekable();
    let mut largest = 0u32;
    let mut in_literal = false;
    while let Some(c) = chars.next() {
        if in_literal {
            in_literal = c != '\'';
            out.push(c);
            continue;
        }
        match c {
            '\'' => {
                in_literal = true;
                out.push(c);
            }
            '?' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                let n = digits.parse().unwrap_or(largest + 1);
                largest = largest.max(n);
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    strip_index_hints(&out)
}

/// Removes SQLite's `INDEXED BY name` hints (PostgreSQL's planner takes no hints).
fn strip_index_hints(sql: &str) -> String {
    const HINT: &str = "INDEXED BY ";
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find(HINT) {
        out.push_str(&rest[..at]);
        let after = &rest[at + HINT.len()..];
        let name_end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        rest = &after[name_end..];
    }
    out.push_str(rest);
    out
}

/// Runs `$body` once for whichever backend `$store` has, with `$pool` its pool for reads and
/// `$d` its [`Dialect`]. The body is compiled for each backend.
macro_rules! on_reader {
    ($store:expr, |$pool:ident, $d:ident| $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite { pool: $pool, .. } => {
                let $d = $crate::store::Dialect::Sqlite;
                $body
            }
            $crate::store::Db::Postgres { pool: $pool } => {
                let $d = $crate::store::Dialect::Postgres;
                $body
            }
        }
    };
}

/// Like [`on_reader!`], with `$pool` the backend's pool for writes (SQLite's one writer).
macro_rules! on_writer {
    ($store:expr, |$pool:ident, $d:ident| $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite {
                writer: $pool, wal, ..
            } => {
                let $d = $crate::store::Dialect::Sqlite;
                let written = $body;
                if let Some(wal) = wal {
                    wal.synced().await?;
                }
                written
            }
            $crate::store::Db::Postgres { pool: $pool } => {
                let $d = $crate::store::Dialect::Postgres;
                $body
            }
        }
    };
}

/// Runs `$body` inside the transaction `$tx` (a `&mut Tx`), with `$conn` its connection and
/// `$d` its [`Dialect`]; compiled for each backend.
macro_rules! in_tx {
    ($tx:expr, |$conn:ident, $d:ident| $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite(t, _) => {
                let $conn: &mut sqlx::SqliteConnection = &mut *t;
                let $d = $crate::store::Dialect::Sqlite;
                $body
            }
            $crate::store::Tx::Postgres(t) => {
                let $conn: &mut sqlx::PgConnection = &mut *t;
                let $d = $crate::store::Dialect::Postgres;
                $body
            }
        }
    };
}

pub(crate) use {in_tx, on_reader, on_writer};

/// The pool behind a store, for tests that look at or alter rows directly (see
/// [`with_raw_pool!`](crate::with_raw_pool)). On SQLite, the writer.
#[doc(hidden)]
pub enum RawPool<'a> {
    Sqlite(&'a SqlitePool),
    Postgres(&'a PgPool),
}

/// Runs `$body` with `$pool` the pool behind `$store` and `$d` its [`Dialect`], compiled for
/// each backend: what a test needs to look at or alter rows on either store.
#[doc(hidden)]
#[macro_export]
macro_rules! with_raw_pool {
    ($store:expr, |$pool:ident, $d:ident| $body:expr) => {
        match $store.raw_pool() {
            $crate::store::RawPool::Sqlite($pool) => {
                let $d = $crate::store::Dialect::Sqlite;
                $body
            }
            $crate::store::RawPool::Postgres($pool) => {
                let $d = $crate::store::Dialect::Postgres;
                $body
            }
        }
    };
}

/// A write transaction on either backend; dropped without [`Tx::commit`], it rolls back.
/// On SQLite it carries the WAL's syncer when commits must be durable.
pub enum Tx {
    Sqlite(
        sqlx::Transaction<'static, Sqlite>,
        Option<wal_sync::WalSync>,
    ),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Tx {
    /// Commits, and returns once the commit is durable as the store's setting says.
    pub async fn commit(self) -> Result<()> {
        Ok(self.commit_unsynced().await?.synced().await?)
    }

    /// Commits and frees the writer at once; the commit may still be on its way to disk
    /// until [`Unsynced::synced`]. Group commit uses it to let the next group write while
    /// this one's sync runs.
    pub async fn commit_unsynced(self) -> Result<Unsynced> {
        Ok(match self {
            Tx::Sqlite(t, wal) => {
                t.commit().await?;
                Unsynced(wal)
            }
            Tx::Postgres(t) => {
                t.commit().await?;
                Unsynced(None)
            }
        })
    }
}

/// A commit that may not be on disk yet (see [`Tx::commit_unsynced`]).
#[must_use = "a commit is not durable until it is synced"]
pub struct Unsynced(Option<wal_sync::WalSync>);

impl Unsynced {
    /// Resolves once the commit is durable as the store's setting says.
    pub async fn synced(self) -> Result<(), std::sync::Arc<std::io::Error>> {
        match self.0 {
            Some(wal) => wal.synced().await,
            None => Ok(()),
        }
    }
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

/// How work is best sized for a store (see [`Store::tuning`]).
#[derive(Clone, Copy, Debug)]
pub struct Tuning {
    /// Most attempts written in one transaction: enough to keep the commits per second few;
    /// on SQLite few enough that a batch holds the one writer well under the 50 ms a publish
    /// may wait (PostgreSQL's writers do not wait for one another, and a round trip costs
    /// more).
    pub record_batch: usize,
    /// Most rows one claim takes. A claim holds SQLite's one writer while it marks them, and
    /// a thousand took it for longer than a publish should wait (50 ms); PostgreSQL's writers
    /// do not wait for one another, and each claim there walks the queue index past the
    /// entries of rows just claimed, so fewer, larger claims drain faster.
    pub max_claim: usize,
    /// Publish transactions in flight at once: one on SQLite's one writer; on PostgreSQL a
    /// few, so groups form while a commit waits on the server's disk.
    pub publish_lanes: usize,
    /// Whether the store has a WAL for the engine to checkpoint off the writer's path.
    pub checkpoints_wal: bool,
}

impl Store {
    /// Opens the store a `HERALD_DATABASE_URL` names, with the default options.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        Self::connect_with(url, StoreOptions::default()).await
    }

    /// Opens the store a `HERALD_DATABASE_URL` names (SQLite has its one writer and
    /// [`READERS`] readers; PostgreSQL a pool of `options.pg_connections`).
    pub async fn connect_with(url: &str, options: StoreOptions) -> anyhow::Result<Self> {
        match StoreUrl::parse(url).map_err(anyhow::Error::msg)? {
            StoreUrl::Sqlite(url) => Self::connect_sqlite(&url, options.sqlite_sync).await,
            StoreUrl::Postgres(url) => Self::connect_postgres(&url, options.pg_connections).await,
        }
    }

    /// Connects to the PostgreSQL database at `url`. Errors say what failed without the URL
    /// (it may carry a password).
    async fn connect_postgres(url: &str, connections: u32) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            anyhow::anyhow!("HERALD_DATABASE_URL is not a valid PostgreSQL URL: {e}")
        })?;
        let (host, port, database) = (
            options.get_host().to_string(),
            options.get_port(),
            options.get_database().unwrap_or("(default)").to_string(),
        );
        let pool = PgPoolOptions::new()
            .max_connections(connections.max(2))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "could not connect to PostgreSQL at {host}:{port}, database {database}: {e}"
                )
            })?;
        Ok(Store {
            db: Db::Postgres { pool },
            tag: crate::ids::new_id("proc").into(),
            writer_holds: Histogram::new(WRITER_HOLD_BUCKETS),
            wal_syncs: Histogram::new(WAL_SYNC_BUCKETS),
            bulk_signal: Default::default(),
        })
    }

    /// Opens (creating if needed) the SQLite database at `url` in WAL mode, each commit
    /// synced as `sync` says.
    async fn connect_sqlite(url: &str, sync: SqliteSync) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // `full` is NORMAL plus a sync of the WAL after each commit, off the writer
            // (`wal_sync`): SQLite's own FULL would sync inside the commit, holding the writer.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
            .foreign_keys(true);
        if let Some(parent) = options.get_filename().parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent)?;
            }
        }
        let in_memory = options.get_filename() == std::path::Path::new(":memory:");
        let wal_syncs = Histogram::new(WAL_SYNC_BUCKETS);
        let wal = match sync {
            SqliteSync::Full if !in_memory => Some(wal_sync::WalSync::start(
                options.get_filename(),
                wal_syncs.clone(),
            )?),
            _ => None,
        };
        // A file on this machine does not go stale between uses: no ping before each acquire
        // (it would cost a round trip to the connection's thread every time).
        // The writer's page cache (in KiB, `WRITER_CACHE_KIB`) holds the queue's hot pages
        // across batches; with SQLite's default of 2 MiB it re-reads them from the file.
        // Readers keep a small one: a reader drops its whole cache whenever the database
        // changed since its last read. Both are part of Herald's memory budget (the README's
        // peak RSS figure), however large the queue grows.
        let writer_holds = Histogram::new(WRITER_HOLD_BUCKETS);
        let clock = WriterClock::new(writer_holds.clone());
        let (on_connect, on_acquire, on_release) = (clock.clone(), clock.clone(), clock);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .after_connect(move |_, _| {
                on_connect.start();
                Box::pin(async { Ok(()) })
            })
            .before_acquire(move |_, _| {
                on_acquire.start();
                Box::pin(async { Ok(true) })
            })
            .after_release(move |_, _| {
                on_release.stop();
                Box::pin(async { Ok(true) })
            })
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(
                options
                    .clone()
                    .pragma("cache_size", format!("-{WRITER_CACHE_KIB}"))
                    .pragma("wal_autocheckpoint", WRITER_CHECKPOINT_PAGES.to_string())
                    // Every write waits while one statement runs: one that holds the writer
                    // past what a publish should wait is named (`sqlx::query=debug`), the
                    // rest stay at trace.
                    .log_statements(log::LevelFilter::Trace)
                    .log_slow_statements(log::LevelFilter::Debug, WRITER_SLOW_STATEMENT),
            )
            .await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(READERS)
            .test_before_acquire(false)
            // Readers log each statement at trace too, so `sqlx::query=debug` shows the
            // writer's slow statements alone (sqlx's default would log every read at debug);
            // a read over a second still warns.
            .connect_with(
                options
                    .pragma("cache_size", format!("-{READER_CACHE_KIB}"))
                    .log_statements(log::LevelFilter::Trace),
            )
            .await?;
        Ok(Store {
            db: Db::Sqlite { pool, writer, wal },
            tag: crate::ids::new_id("proc").into(),
            writer_holds,
            wal_syncs,
            bulk_signal: Default::default(),
        })
    }

    /// Applies the migrations embedded in the binary. On PostgreSQL sqlx holds an advisory
    /// lock while it migrates: nodes starting together on an empty database migrate once.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match &self.db {
            Db::Sqlite { writer, .. } => sqlx::migrate!("./migrations/sqlite").run(writer).await?,
            Db::Postgres { pool } => sqlx::migrate!("./migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// Copies what the WAL holds into the database file, without waiting for readers or
    /// blocking the writer (SQLite's passive checkpoint, from a reader connection); the WAL
    /// starts again from its beginning once all of it is copied. Nothing to do on PostgreSQL.
    /// Copies what it can of SQLite's WAL into the database file without waiting for anyone;
    /// returns the WAL's frames when every one of them is in the file (None when some are
    /// not yet, and on PostgreSQL).
    pub async fn checkpoint(&self) -> Result<Option<i64>> {
        let Db::Sqlite { pool, .. } = &self.db else {
            return Ok(None);
        };
        let (_busy, frames, copied): (i64, i64, i64) =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(pool)
                .await?;
        Ok((frames == copied).then_some(frames))
    }

    /// Empties SQLite's WAL file. SQLite reuses the file from its start but never shrinks
    /// it: after a burst it keeps its largest size (up to the writer's checkpoint limit,
    /// 64 MiB) for good. It waits for readers to leave the WAL and holds writers meanwhile:
    /// the engine calls it only when nothing was written for a while, and it gives up (the
    /// file stays as it is) after [`WAL_TRUNCATE_WAIT`].
    pub async fn truncate_wal(&self) -> Result<()> {
        let Db::Sqlite { pool, .. } = &self.db else {
            return Ok(());
        };
        let mut conn = pool.acquire().await?;
        let wait = format!("PRAGMA busy_timeout = {}", WAL_TRUNCATE_WAIT.as_millis());
        sqlx::query(&wait).execute(&mut *conn).await?;
        let done = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut *conn)
            .await;
        let usual = format!("PRAGMA busy_timeout = {}", SQLITE_BUSY_TIMEOUT.as_millis());
        sqlx::query(&usual).execute(&mut *conn).await?;
        done?;
        Ok(())
    }

    /// True when the database answers.
    pub async fn ping(&self) -> bool {
        on_reader!(self, |pool, _d| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .is_ok())
    }

    #[doc(hidden)]
    pub fn raw_pool(&self) -> RawPool<'_> {
        match &self.db {
            Db::Sqlite { writer, .. } => RawPool::Sqlite(writer),
            Db::Postgres { pool } => RawPool::Postgres(pool),
        }
    }

    /// Tells the engine a bulk change was written down (after its transaction committed).
    pub(crate) fn signal_bulk(&self) {
        self.bulk_signal.notify_one();
    }

    /// Resolves when a bulk change was written down since the last call.
    pub async fn bulk_written(&self) {
        self.bulk_signal.notified().await
    }

    /// The durations of the writer's holds (for `herald_store_writer_hold_seconds`).
    pub fn writer_holds(&self) -> &Histogram {
        &self.writer_holds
    }

    /// The durations of the WAL's syncs (for `herald_store_wal_sync_seconds`).
    pub fn wal_syncs(&self) -> &Histogram {
        &self.wal_syncs
    }

    /// Which backend this is.
    /// How callers should size their work for this store, so that no layer above it branches
    /// on the backend.
    pub fn tuning(&self) -> Tuning {
        match self.dialect() {
            Dialect::Sqlite => Tuning {
                record_batch: 250,
                max_claim: 256,
                publish_lanes: 1,
                checkpoints_wal: true,
            },
            Dialect::Postgres => Tuning {
                record_batch: 1000,
                max_claim: 1024,
                publish_lanes: 4,
                checkpoints_wal: false,
            },
        }
    }

    pub fn dialect(&self) -> Dialect {
        match &self.db {
            Db::Sqlite { .. } => Dialect::Sqlite,
            Db::Postgres { .. } => Dialect::Postgres,
        }
    }

    /// Starts a write transaction (on SQLite, on the one writer).
    pub async fn begin(&self) -> Result<Tx> {
        Ok(match &self.db {
            Db::Sqlite { writer, wal, .. } => Tx::Sqlite(writer.begin().await?, wal.clone()),
            Db::Postgres { pool } => Tx::Postgres(pool.begin().await?),
        })
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
