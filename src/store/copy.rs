//! `herald copy`: an installation from one store to another (SQLite to PostgreSQL when it
//! outgrows one machine, or back). The source is read in one snapshot and the target written
//! in one transaction: a copy that fails leaves the target as empty as it was.

use super::{Result, Store, Tx};
use sqlx::types::Json;
use sqlx::{QueryBuilder, Row};

/// How a column is read and written on either store.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Text,
    Int,
    Bool,
    /// JSON read as a type (text on SQLite, jsonb on PostgreSQL).
    Json,
}

struct Table {
    name: &'static str,
    /// The primary key, in order: rows are read by key ranges, never by offset.
    key: &'static [&'static str],
    columns: &'static [(&'static str, Kind)],
}

use Kind::{Bool, Int, Json as J, Text};

/// Every table an installation consists of, parents before children. Not copied: sessions
/// (users sign in again), nodes and rate schedules (the new installation's own).
const TABLES: &[Table] = &[
    Table {
        name: "shops",
        key: &["id"],
        columns: &[
            ("id", Text),
            ("num", Int),
            ("name", Text),
            ("webhooks_enabled", Bool),
            ("require_https", Bool),
            ("failed_retention_hours", Int),
            ("log_retention_days", Int),
            ("default_retry", J),
            ("created_at", Int),
            ("updated_at", Int),
        ],
    },
    Table {
        name: "users",
        key: &["id"],
        columns: &[
            ("id", Text),
            ("email", Text),
            ("password_hash", Text),
            ("is_operator", Bool),
            ("session_version", Int),
            ("created_at", Int),
            ("updated_at", Int),
        ],
    },
    Table {
        name: "memberships",
        key: &["shop_id", "user_id"],
        columns: &[
            ("shop_id", Text),
            ("user_id", Text),
            ("role", Text),
            ("created_at", Int),
        ],
    },
    Table {
        name: "api_keys",
        key: &["id"],
        columns: &[
            ("id", Text),
            ("shop_id", Text),
            ("name", Text),
            ("key_hash", Text),
            ("key_prefix", Text),
            ("created_at", Int),
            ("last_used_at", Int),
            ("revoked_at", Int),
        ],
    },
    Table {
        name: "endpoints",
        key: &["id"],
        columns: &[
            ("id", Text),
            ("num", Int),
            ("shop_id", Text),
            ("url", Text),
            ("description", Text),
            ("enabled", Bool),
            ("event_types", J),
            ("channels", J),
            ("basic_auth_username", Text),
            ("basic_auth_password_enc", Text),
            ("headers", J),
            ("content_type", Text),
            ("template", Text),
            ("retry", J),
            ("timeout_ms", Int),
            ("priority", Int),
            ("unique_pending", Bool),
            ("disable_on_status", J),
            ("unsubscribe_phrase", Text),
            ("unsubscribe_action", Text),
            ("disable_after_days", Int),
            ("client_certificate_enc", Text),
            ("rate_limit_per_second", Int),
            ("secret_enc", Text),
            ("previous_secret_enc", Text),
            ("previous_secret_until", Int),
            ("disabled_reason", Text),
            ("failing_since", Int),
            ("last_attempt_at", Int),
            ("deleted_at", Int),
            ("created_at", Int),
            ("updated_at", Int),
        ],
    },
    Table {
        name: "event_types",
        key: &["shop_id", "name"],
        columns: &[
            ("shop_id", Text),
            ("name", Text),
            ("description", Text),
            ("sample", J),
            ("schema", J),
            ("source", Text),
            ("created_at", Int),
            ("updated_at", Int),
        ],
    },
    Table {
        name: "events",
        key: &["shop", "id"],
        columns: &[
            ("shop", Int),
            ("id", Text),
            ("type", Text),
            ("channels", J),
            ("data", Text),
            ("entity_key", Text),
            ("priority", Int),
            ("deliveries", Text),
            ("created_at", Int),
        ],
    },
    Table {
        name: "deliveries",
        key: &["id"],
        columns: &[
            ("id", Int),
            ("shop", Int),
            ("event_id", Text),
            ("endpoint", Int),
            ("event_type", Text),
            ("channels", J),
            ("entity_key", Text),
            ("status", Text),
            ("priority", Int),
            ("attempt_count", Int),
            ("next_attempt_at", Int),
            ("lease_until", Int),
            ("lease_owner", Text),
            ("last_status_code", Int),
            ("last_error", Text),
            ("created_at", Int),
            ("updated_at", Int),
        ],
    },
    Table {
        name: "delivery_legacy_ids",
        key: &["legacy_id"],
        columns: &[("legacy_id", Text), ("id", Int)],
    },
    Table {
        name: "attempts",
        key: &["id"],
        columns: &[
            ("id", Int),
            ("shop", Int),
            ("delivery_id", Int),
            ("endpoint_id", Text),
            ("number", Int),
            ("status_code", Int),
            ("error_kind", Text),
            ("error_message", Text),
            ("duration_ms", Int),
            ("request_form", Int),
            ("request_headers", Text),
            ("request_body", Text),
            ("response_headers", Text),
            ("response_body", Text),
            ("at", Int),
        ],
    },
    Table {
        name: "alerts",
        key: &["id"],
        columns: &[
            ("id", Text),
            ("shop_id", Text),
            ("kind", Text),
            ("endpoint_id", Text),
            ("delivery_id", Text),
            ("message", Text),
            ("created_at", Int),
            ("acknowledged_at", Int),
        ],
    },
];

/// Rows read and written per statement.
const BATCH: usize = 500;

#[derive(Clone, Debug)]
enum Value {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(Option<bool>),
    Json(Option<Json<serde_json::Value>>),
}

/// Reads column `i` of a row as `kind`, on either store.
macro_rules! decode {
    ($row:expr, $i:expr, $kind:expr) => {
        match $kind {
            Kind::Text => Value::Text($row.try_get($i)?),
            Kind::Int => Value::Int($row.try_get($i)?),
            Kind::Bool => Value::Bool($row.try_get($i)?),
            Kind::Json => Value::Json($row.try_get($i)?),
        }
    };
}

/// Binds a value into a row of a multi-row INSERT, on either store.
macro_rules! bind {
    ($b:expr, $v:expr) => {
        match $v {
            Value::Text(v) => $b.push_bind(v.clone()),
            Value::Int(v) => $b.push_bind(*v),
            Value::Bool(v) => $b.push_bind(*v),
            Value::Json(v) => $b.push_bind(v.clone()),
        }
    };
}

/// What was copied: rows per table, in copy order.
pub type Copied = Vec<(&'static str, u64)>;

impl Store {
    /// Copies every table of this store into `target`, which must be empty (migrated, with
    /// no row in any table). Both stores must be at this version's schema (migrate first).
    pub async fn copy_into(&self, target: &Store) -> anyhow::Result<Copied> {
        // (On SQLite the sessions table comes with the session store: make sure it is there.)
        target.sessions().await?;
        if let Some(table) = target.first_nonempty_table().await? {
            anyhow::bail!(
                "the target database is not empty (table {table} has rows): herald copy writes \
                 only into a new, empty database"
            );
        }
        let mut source = self.begin().await?;
        // One snapshot of the source for the whole copy.
        if let Tx::Postgres(t) = &mut source {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .execute(&mut **t)
                .await?;
        }
        let mut into = target.begin().await?;
        let mut copied = Vec::new();
        for table in TABLES {
            let mut n = 0u64;
            let mut after: Option<Vec<Value>> = None;
            loop {
                let rows = read_batch(&mut source, table, after.as_deref()).await?;
                if rows.is_empty() {
                    break;
                }
                write_batch(&mut into, table, &rows).await?;
                n += rows.len() as u64;
                let last = rows.last().expect("not empty");
                after = Some(key_of(table, last));
                if rows.len() < BATCH {
                    break;
                }
            }
            copied.push((table.name, n));
        }
        // Attempt ids were copied as they were: PostgreSQL's counter goes on after them.
        if let Tx::Postgres(t) = &mut into {
            sqlx::query(
                "SELECT setval(pg_get_serial_sequence('attempts', 'id'),
                 COALESCE((SELECT MAX(id) FROM attempts), 0) + 1, false)",
            )
            .execute(&mut **t)
            .await?;
            // And shop and endpoint numbers after theirs.
            for sql in [
                "SELECT setval('shop_numbers', COALESCE((SELECT MAX(num) FROM shops), 0) + 1, false)",
                "SELECT setval('endpoint_numbers',
                 COALESCE((SELECT MAX(num) FROM endpoints), 0) + 1, false)",
            ] {
                sqlx::query(sql).execute(&mut **t).await?;
            }
        }
        into.commit().await?;
        drop(source);
        Ok(copied)
    }

    /// The first table with a row in it, if any (sessions included).
    async fn first_nonempty_table(&self) -> Result<Option<&'static str>> {
        let mut tx = self.begin().await?;
        for table in TABLES.iter().map(|t| t.name).chain(["sessions"]) {
            let sql = format!("SELECT COUNT(*) FROM (SELECT 1 FROM {table} LIMIT 1) AS any_row");
            let n: i64 = super::in_tx!(&mut tx, |c, _d| sqlx::query_scalar(&sql)
                .fetch_one(c)
                .await?);
            if n > 0 {
                return Ok(Some(table));
            }
        }
        Ok(None)
    }
}

/// The primary key values of a row (for the next range).
fn key_of(table: &Table, row: &[Value]) -> Vec<Value> {
    table
        .key
        .iter()
        .map(|k| {
            let i = table
                .columns
                .iter()
                .position(|(c, _)| c == k)
                .expect("key columns are columns");
            row[i].clone()
        })
        .collect()
}

/// Up to [`BATCH`] rows after the key `after`, in key order.
async fn read_batch(
    tx: &mut Tx,
    table: &Table,
    after: Option<&[Value]>,
) -> Result<Vec<Vec<Value>>> {
    let columns: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
    let key = table.key.join(", ");
    super::in_tx!(tx, |c, _d| {
        let mut qb = QueryBuilder::new(format!(
            "SELECT {} FROM {} ",
            columns.join(", "),
            table.name
        ));
        if let Some(after) = after {
            qb.push(format!("WHERE ({key}) > ("));
            let mut sep = qb.separated(", ");
            for v in after {
                bind!(sep, v);
            }
            sep.push_unseparated(") ");
        }
        qb.push(format!("ORDER BY {key} LIMIT {BATCH}"));
        let rows = qb.build().fetch_all(&mut *c).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut values = Vec::with_capacity(table.columns.len());
            for (i, (_, kind)) in table.columns.iter().enumerate() {
                values.push(decode!(row, i, *kind));
            }
            out.push(values);
        }
        Ok(out)
    })
}

async fn write_batch(tx: &mut Tx, table: &Table, rows: &[Vec<Value>]) -> Result<()> {
    let columns: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
    super::in_tx!(tx, |c, _d| {
        let mut qb = QueryBuilder::new(format!(
            "INSERT INTO {} ({}) ",
            table.name,
            columns.join(", ")
        ));
        qb.push_values(rows, |mut b, row| {
            for v in row {
                bind!(b, v);
            }
        });
        qb.build().execute(&mut *c).await?;
        Ok(())
    })
}
