//! Durable commits on SQLite without syncing on the writer.
//!
//! With `synchronous = FULL` SQLite syncs its WAL inside every `COMMIT`, while it holds the
//! one writer: nothing else can be written during the sync, so every commit pays for a disk
//! flush in series. Herald's `full` setting instead runs the writer at `NORMAL` (a commit
//! writes its frames to the WAL and returns) and syncs the WAL here, on a thread of its own,
//! before the caller goes on. The writer starts the next transaction while the disk flushes
//! the last one, and every commit that finished before a sync began shares that one sync.
//! A 202 still means the event is on disk: the caller waits for a sync that began after its
//! commit had returned, which is what `FULL` promises.

use prometheus_client::metrics::histogram::Histogram;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use tokio::sync::oneshot;

type Waiter = oneshot::Sender<Result<(), Arc<io::Error>>>;

/// Syncs one database's WAL file on request; cheap to clone. The syncing thread stops when
/// the last clone is dropped.
#[derive(Clone, Debug)]
pub struct WalSync {
    requests: mpsc::Sender<Waiter>,
}

impl WalSync {
    /// Starts the syncing thread for the WAL of the database file `database`, observing
    /// how long each sync took in `durations`.
    pub fn start(database: &Path, durations: Histogram) -> io::Result<Self> {
        Self::start_with(wal_path(database), move |wal, open| {
            let started = std::time::Instant::now();
            let synced = sync_file(wal, open);
            durations.observe(started.elapsed().as_secs_f64());
            synced
        })
    }

    /// Starts a syncing thread that calls `sync` with the WAL's path and the file it has
    /// open (what the tests replace to watch the calls).
    fn start_with(
        wal: PathBuf,
        sync: impl Fn(&Path, &mut Option<OpenWal>) -> io::Result<()> + Send + 'static,
    ) -> io::Result<Self> {
        let (requests, waiting) = mpsc::channel::<Waiter>();
        std::thread::Builder::new()
            .name("herald-wal-sync".into())
            .spawn(move || {
                let mut open = None;
                // Every request taken before a sync begins was made after its commit had
                // returned, so that sync covers it; requests made during the sync wait for
                // the next one.
                while let Ok(first) = waiting.recv() {
                    let mut batch = vec![first];
                    batch.extend(waiting.try_iter());
                    let outcome = sync(&wal, &mut open).map_err(|e| {
                        open = None;
                        Arc::new(e)
                    });
                    for waiter in batch {
                        let _ = waiter.send(outcome.clone());
                    }
                }
            })?;
        Ok(WalSync { requests })
    }

    /// Resolves once everything committed before the call is on disk.
    pub async fn synced(&self) -> Result<(), Arc<io::Error>> {
        let (waiter, done) = oneshot::channel();
        let stopped = || Arc::new(io::Error::other("the WAL sync thread has stopped"));
        self.requests.send(waiter).map_err(|_| stopped())?;
        done.await.map_err(|_| stopped())?
    }
}

/// SQLite's WAL for a database file: the same name with `-wal` appended.
fn wal_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// The WAL file the thread keeps open, with the device and inode it was opened as.
#[derive(Debug)]
pub struct OpenWal {
    file: File,
    identity: (u64, u64),
}

/// Flushes the WAL at `wal` to disk. The file is opened once and again only when the name
/// points at another file: SQLite deletes its WAL when the last connection closes (after
/// copying it into the database and syncing that) and creates a new one on the next open.
/// A new WAL's directory entry is synced too, so the file itself survives a power loss.
/// No WAL at all means no commit is waiting in one.
fn sync_file(wal: &Path, open: &mut Option<OpenWal>) -> io::Result<()> {
    let metadata = match std::fs::metadata(wal) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            *open = None;
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let identity = (metadata.dev(), metadata.ino());
    let current = match open.take() {
        Some(o) if o.identity == identity => o,
        _ => {
            let file = File::open(wal)?;
            if let Some(dir) = wal.parent().filter(|d| !d.as_os_str().is_empty()) {
                File::open(dir)?.sync_all()?;
            }
            OpenWal { file, identity }
        }
    };
    current.file.sync_data()?;
    *open = Some(current);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn the_wal_is_the_database_name_with_wal_appended() {
        assert_eq!(
            wal_path(Path::new("data/herald.db")),
            PathBuf::from("data/herald.db-wal")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn callers_waiting_together_share_one_sync_and_none_is_answered_by_an_earlier_one() {
        let calls = Arc::new(AtomicUsize::new(0));
        let (entered, entered_rx) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let release_rx = std::sync::Mutex::new(release_rx);
        let counted = calls.clone();
        let sync = WalSync::start_with("unused".into(), move |_, _| {
            counted.fetch_add(1, Ordering::SeqCst);
            entered.send(()).unwrap();
            release_rx.lock().unwrap().recv().unwrap();
            Ok(())
        })
        .unwrap();
        // The first caller starts a sync, which blocks until released.
        let first = tokio::spawn({
            let s = sync.clone();
            async move { s.synced().await }
        });
        entered_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        // Three callers arrive while it runs: the running sync began before they asked, so
        // it must not answer them.
        let later: Vec<_> = (0..3)
            .map(|_| {
                let s = sync.clone();
                tokio::spawn(async move { s.synced().await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        release.send(()).unwrap();
        first.await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(later.iter().all(|h| !h.is_finished()), "answered too early");
        // One more sync answers all three.
        entered_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        release.send(()).unwrap();
        for h in later {
            h.await.unwrap().unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2, "syncs");
    }

    #[tokio::test]
    async fn a_failed_sync_fails_its_callers_and_the_next_one_reopens_the_file() {
        let reopened = Arc::new(AtomicUsize::new(0));
        let seen = reopened.clone();
        let failures = AtomicUsize::new(1);
        let sync = WalSync::start_with("unused".into(), move |_, open| {
            if open.is_none() {
                seen.fetch_add(1, Ordering::SeqCst);
            }
            if failures.fetch_sub(1, Ordering::SeqCst) == 1 {
                return Err(io::Error::other("disk on fire"));
            }
            *open = Some(OpenWal {
                file: File::open("/dev/null")?,
                identity: (0, 0),
            });
            Ok(())
        })
        .unwrap();
        let e = sync.synced().await.unwrap_err();
        assert!(e.to_string().contains("disk on fire"), "{e}");
        sync.synced().await.unwrap();
        sync.synced().await.unwrap();
        assert_eq!(reopened.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_wal_is_opened_once_again_when_replaced_and_a_missing_one_needs_no_sync() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("herald.db-wal");
        let mut open = None;
        sync_file(&wal, &mut open).unwrap();
        assert!(open.is_none());
        std::fs::write(&wal, b"frames").unwrap();
        sync_file(&wal, &mut open).unwrap();
        let first = open.as_ref().unwrap().identity;
        sync_file(&wal, &mut open).unwrap();
        assert_eq!(open.as_ref().unwrap().identity, first);
        // The open file keeps its inode from being reused, so the new WAL is another one.
        std::fs::remove_file(&wal).unwrap();
        std::fs::write(&wal, b"new frames").unwrap();
        sync_file(&wal, &mut open).unwrap();
        assert_ne!(open.as_ref().unwrap().identity, first);
    }
}
