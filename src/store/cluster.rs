//! What nodes on one PostgreSQL database share beyond the tables: wake-ups and activity by
//! `LISTEN/NOTIFY`, and work that runs on one node at a time under an advisory lock. On SQLite
//! there is one node: notifying is a no-op, nobody listens, and every lock is this node's.

use super::{Db, Result, Store};
use crate::ids::{DeliveryId, ShopId};
use sqlx::postgres::PgListener;
use sqlx::PgConnection;

/// Channel of "new work is queued": every node claims.
pub const WORK_CHANNEL: &str = "herald_work";
/// Channel of activity relayed between nodes (a JSON payload).
pub const ACTIVITY_CHANNEL: &str = "herald_activity";
/// Channel of "cancel this delivery if you only read it ahead" (payload `shop_id delivery_id`).
pub const CANCEL_CHANNEL: &str = "herald_cancel";
/// The cancel channel's delivery id meaning "every delivery of the shop read ahead: give it
/// back" (its webhooks were turned off).
const EVERY_DELIVERY: &str = "*";
/// Largest payload sent in one notification (PostgreSQL's limit is 8000 bytes).
pub const MAX_PAYLOAD: usize = 7_900;

/// What another node said.
#[derive(Debug)]
pub enum Signal {
    Work,
    /// A node's live activity streams opened or closed.
    Listeners,
    Activity(String),
    /// (shop id, delivery id)
    Cancel(String, String),
    /// A shop's webhooks were turned off: give back what was read ahead of it.
    ShopPaused(String),
}

/// Notifications from other nodes (PostgreSQL).
pub struct Listener {
    listener: PgListener,
    /// This process's tag: its own work notifications are not news to it.
    tag: std::sync::Arc<str>,
}

/// A work notification's payload: the sender's tag, and `listeners` when what changed is a
/// node's live activity streams.
const LISTENERS: &str = "listeners";

impl Listener {
    /// The next notification from another process. After an error the listener reconnects
    /// by itself; what was sent meanwhile is lost, so the caller treats an error as "there may
    /// be work".
    pub async fn next(&mut self) -> Result<Signal> {
        loop {
            let n = self.listener.recv().await?;
            let payload = n.payload();
            match n.channel() {
                WORK_CHANNEL => {
                    let (tag, what) = payload.split_once(' ').unwrap_or((payload, ""));
                    if tag == &*self.tag {
                        continue;
                    }
                    return Ok(if what == LISTENERS {
                        Signal::Listeners
                    } else {
                        Signal::Work
                    });
                }
                ACTIVITY_CHANNEL => return Ok(Signal::Activity(payload.to_string())),
                CANCEL_CHANNEL => match payload.split_once(' ') {
                    Some((shop, EVERY_DELIVERY)) => {
                        return Ok(Signal::ShopPaused(shop.to_string()))
                    }
                    Some((shop, id)) => {
                        return Ok(Signal::Cancel(shop.to_string(), id.to_string()))
                    }
                    None => {}
                },
                _ => return Ok(Signal::Work),
            }
        }
    }
}

/// Work that must run on one node at a time, held for as long as this value lives: on
/// PostgreSQL a session advisory lock on a connection of its own (a node that dies lets go
/// with its connection), on SQLite nothing to hold.
pub struct Singleton {
    conn: Option<PgConnection>,
}

impl Singleton {
    /// Whether the lock is still held (its connection still answers).
    pub async fn still_held(&mut self) -> bool {
        match &mut self.conn {
            None => true,
            Some(conn) => sqlx::query("SELECT 1").execute(conn).await.is_ok(),
        }
    }
}

/// The advisory lock key of a named job: stable across nodes and versions.
pub fn lock_key(name: &str) -> i64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("herald:{name}").as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// Takes the named job's lock for the rest of `tx` if no node holds it (PostgreSQL).
pub async fn try_job_lock(tx: &mut sqlx::PgConnection, name: &str) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(lock_key(name))
        .fetch_one(tx)
        .await?)
}

impl Store {
    /// Tells every node that work is queued (PostgreSQL; nothing to tell on SQLite).
    pub async fn notify_work(&self) -> Result<()> {
        self.notify(WORK_CHANNEL, &self.tag).await
    }

    /// Tells every node that this node's live activity streams changed.
    pub async fn notify_listeners(&self) -> Result<()> {
        self.notify(WORK_CHANNEL, &format!("{} {LISTENERS}", self.tag))
            .await
    }

    /// The payload of this process's work notifications.
    pub(super) fn work_payload(&self) -> &str {
        &self.tag
    }

    /// Relays activity to the other nodes (PostgreSQL). `payload` is at most [`MAX_PAYLOAD`].
    pub async fn notify_activity(&self, payload: &str) -> Result<()> {
        self.notify(ACTIVITY_CHANNEL, payload).await
    }

    /// Asks every node to give back what it read ahead of a shop whose webhooks were turned
    /// off (on the cancel channel, with `*` for the delivery).
    pub async fn notify_shop_paused(&self, shop_id: &ShopId) -> Result<()> {
        self.notify(CANCEL_CHANNEL, &format!("{shop_id} {EVERY_DELIVERY}"))
            .await
    }

    /// Asks the node holding a delivery's lease to cancel it if it only read it ahead.
    pub async fn notify_cancel(&self, shop_id: &ShopId, delivery_id: &DeliveryId) -> Result<()> {
        self.notify(CANCEL_CHANNEL, &format!("{shop_id} {delivery_id}"))
            .await
    }

    /// One notification on one channel (PostgreSQL; on SQLite there is nobody to tell).
    async fn notify(&self, channel: &str, payload: &str) -> Result<()> {
        if let Db::Postgres { pool } = &self.db {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(payload)
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// Listens to the other nodes; `None` on SQLite, where there are none.
    pub async fn listen(&self) -> Result<Option<Listener>> {
        let Db::Postgres { pool } = &self.db else {
            return Ok(None);
        };
        let mut listener = PgListener::connect_with(pool).await?;
        listener
            .listen_all([WORK_CHANNEL, ACTIVITY_CHANNEL, CANCEL_CHANNEL])
            .await?;
        Ok(Some(Listener {
            listener,
            tag: self.tag.clone(),
        }))
    }

    /// Takes the named job's lock if no node holds it.
    pub async fn try_singleton(&self, name: &str) -> Result<Option<Singleton>> {
        let Db::Postgres { pool } = &self.db else {
            return Ok(Some(Singleton { conn: None }));
        };
        let mut conn = pool.acquire().await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(lock_key(name))
            .fetch_one(&mut *conn)
            .await?;
        // Taken: the connection leaves the pool, so the lock ends with it (when the value is
        // dropped, or the node dies) and no other user of the pool inherits it. Not taken:
        // it goes back to the pool holding nothing.
        Ok(got.then(|| Singleton {
            conn: Some(conn.detach()),
        }))
    }
}

/// The tables that grow by the million in bursts, whose planner statistics decide between
/// walking an index in order and reading every row of a shop.
const BURST_TABLES: [&str; 3] = ["deliveries", "events", "attempts"];

impl Store {
    /// Brings PostgreSQL's planner statistics up to date on a table that changed by a fifth
    /// since they were taken (one node at a time; nothing to do on SQLite, whose queries name
    /// their index). Autovacuum does the same, but a minute late by default: a million rows
    /// published in that minute are planned as if the table were empty, and a filtered queue
    /// page reads every delivery of the shop instead of the newest fifty. Returns the tables
    /// analyzed.
    pub async fn refresh_statistics(&self) -> Result<Vec<&'static str>> {
        let Db::Postgres { pool } = &self.db else {
            return Ok(Vec::new());
        };
        let mut tx = pool.begin().await?;
        if !try_job_lock(&mut tx, "refresh-statistics").await? {
            return Ok(Vec::new());
        }
        let stale: Vec<String> = sqlx::query_scalar(
            "SELECT relname::text FROM pg_stat_user_tables
             WHERE schemaname = current_schema() AND relname = ANY($1)
             AND n_mod_since_analyze > n_live_tup / 5 + 1000",
        )
        .bind(&BURST_TABLES[..])
        .fetch_all(&mut *tx)
        .await?;
        let mut analyzed = Vec::new();
        for table in BURST_TABLES {
            if stale.iter().any(|s| s == table) {
                // A fixed name from the list above, not input.
                sqlx::query(&format!("ANALYZE {table}"))
                    .execute(&mut *tx)
                    .await?;
                analyzed.push(table);
            }
        }
        tx.commit().await?;
        Ok(analyzed)
    }
}
