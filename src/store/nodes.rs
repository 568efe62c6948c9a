//! Nodes: each `herald serve` process keeps a row with its heartbeat, so the operator sees
//! every node, when it last answered and what it holds, and nodes know how many are alive.

use super::{on_reader, on_writer, Result, Store};

/// A node as the Nodes page shows it.
#[derive(sqlx::FromRow, Debug, Clone)]
pub struct NodeRow {
    pub id: String,
    pub version: String,
    pub started_at: i64,
    pub heartbeat_at: i64,
    pub stopped_at: Option<i64>,
    /// Deliveries leased under the node's lease prefix (in flight or read ahead).
    pub holding: i64,
}

/// What a node writes at each heartbeat.
#[derive(Debug, Clone)]
pub struct Heartbeat<'a> {
    pub id: &'a str,
    /// The prefix of every lease token the node writes (`{prefix}.{n}`).
    pub lease_prefix: &'a str,
    pub version: &'a str,
    pub started_at: i64,
    pub listeners: i64,
}

/// How long after its last heartbeat a node that did not say it stopped is kept on the page.
pub const FORGET_AFTER_MS: i64 = 24 * 3_600_000;

impl Store {
    /// Writes the node's heartbeat (its row, created at the first).
    pub async fn heartbeat(&self, beat: &Heartbeat<'_>, now: i64) -> Result<()> {
        on_writer!(self, |pool, d| {
            sqlx::query(&d.sql(
                "INSERT INTO nodes (id, lease_prefix, version, started_at, heartbeat_at, listeners)
                 VALUES (?, ?, ?, ?, ?, ?)
                 ON CONFLICT (id) DO UPDATE SET lease_prefix = excluded.lease_prefix,
                 version = excluded.version, started_at = excluded.started_at,
                 heartbeat_at = excluded.heartbeat_at, listeners = excluded.listeners,
                 stopped_at = NULL",
            ))
            .bind(beat.id)
            .bind(beat.lease_prefix)
            .bind(beat.version)
            .bind(beat.started_at)
            .bind(now)
            .bind(beat.listeners)
            .execute(pool)
            .await?;
            // Nodes gone for a day leave the page.
            sqlx::query(&d.sql("DELETE FROM nodes WHERE heartbeat_at < ? AND id != ?"))
                .bind(now - FORGET_AFTER_MS)
                .bind(beat.id)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// The node stopped cleanly (it gave back what it held).
    pub async fn node_stopped(&self, id: &str, now: i64) -> Result<()> {
        on_writer!(self, |pool, d| {
            sqlx::query(&d.sql(
                "UPDATE nodes SET stopped_at = ?, heartbeat_at = ?, listeners = 0 WHERE id = ?",
            ))
            .bind(now)
            .bind(now)
            .bind(id)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Every node known, most recently heard from first, with what each holds.
    pub async fn nodes(&self) -> Result<Vec<NodeRow>> {
        on_reader!(self, |pool, d| {
            Ok(sqlx::query_as(&d.sql(
                "SELECT n.id, n.version, n.started_at, n.heartbeat_at, n.stopped_at,
                 (SELECT COUNT(*) FROM deliveries x INDEXED BY deliveries_leased
                   WHERE x.status = 'delivering'
                   AND substr(x.lease_owner, 1, length(n.lease_prefix) + 1) = n.lease_prefix || '.')
                   AS holding
                 FROM nodes n ORDER BY n.heartbeat_at DESC, n.id",
            ))
            .fetch_all(pool)
            .await?)
        })
    }

    /// Nodes that beat since `since` and have not stopped, and whether any but `me` has live
    /// activity streams open.
    pub async fn live_nodes(&self, since: i64, me: &str) -> Result<(i64, bool)> {
        on_reader!(self, |pool, d| {
            let (live, listened): (i64, i64) = sqlx::query_as(&d.sql(
                "SELECT COUNT(*), CAST(COALESCE(SUM(CASE WHEN id != ? AND listeners > 0
                   THEN 1 ELSE 0 END), 0) AS BIGINT)
                 FROM nodes WHERE heartbeat_at >= ? AND stopped_at IS NULL",
            ))
            .bind(me)
            .bind(since)
            .fetch_one(pool)
            .await?;
            Ok((live, listened > 0))
        })
    }
}
