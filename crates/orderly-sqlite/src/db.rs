//! Connection handling: one writer thread that commits batches of operations, and a pool
//! of reader threads with their own connections.
//!
//! Writes from many tasks queue up on a channel. The writer takes everything waiting (up to
//! [`MAX_BATCH`]), runs each operation inside its own savepoint of one `BEGIN IMMEDIATE`
//! transaction, commits once, and only then answers each caller. An operation that fails
//! rolls back its savepoint alone; the others commit. One fsync thus covers a whole batch
//! (group commit) without weakening durability: no caller hears "done" before its data is
//! committed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use orderly_core::StoreError;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use tokio::sync::oneshot;

/// Most operations committed in one transaction.
pub const MAX_BATCH: usize = 512;

/// How hard SQLite syncs to disk on commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=FULL`: a commit survives power loss (the default).
    #[default]
    Full,
    /// `synchronous=NORMAL`: a commit survives a process crash (SIGKILL) but the last
    /// commits may be lost on power loss.
    Normal,
}

impl std::str::FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Durability, String> {
        match s {
            "full" => Ok(Durability::Full),
            "normal" => Ok(Durability::Normal),
            other => Err(format!(
                "unknown durability {other:?} (expected full or normal)"
            )),
        }
    }
}

/// Converts a SQLite error into a port error, marking lock contention as retryable.
pub fn store_err(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Backend(e.to_string()),
    }
}

fn closed() -> StoreError {
    StoreError::Unavailable("the store is shut down".into())
}

trait WriteOp: Send {
    /// Runs the operation; `true` if its savepoint should be kept.
    fn apply(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the batch's commit outcome is known.
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
}

struct Op<T, F> {
    f: Option<F>,
    out: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> WriteOp for Op<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
{
    fn apply(&mut self, conn: &Connection) -> bool {
        let Some(f) = self.f.take() else {
            return false;
        };
        let out = catch_unwind(AssertUnwindSafe(|| f(conn)))
            .unwrap_or_else(|_| Err(StoreError::Backend("a store operation panicked".into())));
        let ok = out.is_ok();
        self.out = Some(out);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let out = match (commit, self.out) {
            (Ok(()), Some(out)) => out,
            (Err(e), Some(Ok(_))) => Err(e),
            (_, Some(Err(e))) => Err(e),
            (Err(e), None) => Err(e),
            (Ok(()), None) => Err(StoreError::Backend("operation did not run".into())),
        };
        let _ = self.reply.send(out);
    }
}

enum Msg {
    Op(Box<dyn WriteOp>),
    Shutdown,
}

type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// The database: a writer thread and reader threads over one SQLite file in WAL mode.
pub struct Db {
    path: PathBuf,
    writer: flume::Sender<Msg>,
    readers: flume::Sender<ReadJob>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    /// Dropped on close, which stops the checkpointer.
    checkpointer: Mutex<Option<flume::Sender<()>>>,
}

/// WAL size (pages of 4 KiB) past which the writer checkpoints itself (SQLite's default is
/// 1,000).
pub const WRITER_CHECKPOINT_PAGES: i64 = 4_000;

/// How often the checkpointer copies the WAL's committed pages into the database file.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("path", &self.path).finish()
    }
}

fn configure(conn: &Connection, durability: Durability) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        },
    )?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Each operation of a batch runs in its own savepoint, whose undo journal SQLite
    // spills to a temporary file past 64 KiB: keep it in memory. It only ever serves to
    // roll a savepoint back inside an open transaction; crash recovery uses the WAL.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

impl Db {
    /// Opens (creating if needed) the database file and runs `init` on the writer
    /// connection before any other use (migrations).
    pub fn open(
        path: &Path,
        durability: Durability,
        readers: usize,
        init: impl FnOnce(&mut Connection) -> Result<(), StoreError>,
    ) -> Result<Db, StoreError> {
        let mut conn = Connection::open(path).map_err(store_err)?;
        configure(&conn, durability).map_err(store_err)?;
        init(&mut conn)?;
        // Checkpoints run on a thread of their own (below), not inside the writer's
        // commits: an automatic checkpoint makes the commit that crosses the threshold
        // copy and sync the whole WAL while every caller of its batch waits. The writer
        // keeps a late automatic checkpoint as a bound: under unbroken load the WAL
        // cannot start over behind a concurrent checkpointer, and at this size the
        // writer does it, finding most pages already copied.
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)
            .map_err(store_err)?;

        let (wtx, wrx) = flume::unbounded::<Msg>();
        let writer_thread = std::thread::Builder::new()
            .name("orderly-sqlite-writer".into())
            .spawn(move || writer_loop(conn, wrx))
            .map_err(|e| StoreError::Backend(format!("cannot start writer thread: {e}")))?;

        let (rtx, rrx) = flume::unbounded::<ReadJob>();
        for i in 0..readers.max(1) {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(store_err)?;
            configure(&conn, durability).map_err(store_err)?;
            conn.pragma_update(None, "query_only", "ON")
                .map_err(store_err)?;
            let rx = rrx.clone();
            std::thread::Builder::new()
                .name(format!("orderly-sqlite-reader-{i}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        job(&conn);
                    }
                })
                .map_err(|e| StoreError::Backend(format!("cannot start reader thread: {e}")))?;
        }
        let (ctx, crx) = flume::bounded::<()>(1);
        let conn = Connection::open(path).map_err(store_err)?;
        configure(&conn, durability).map_err(store_err)?;
        std::thread::Builder::new()
            .name("orderly-sqlite-checkpointer".into())
            .spawn(move || checkpointer_loop(conn, crx))
            .map_err(|e| StoreError::Backend(format!("cannot start checkpointer thread: {e}")))?;
        Ok(Db {
            path: path.to_owned(),
            writer: wtx,
            readers: rtx,
            writer_thread: Mutex::new(Some(writer_thread)),
            checkpointer: Mutex::new(Some(ctx)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in the writer's current batch; resolves after the batch commits.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let op = Op {
            f: Some(f),
            out: None,
            reply,
        };
        self.writer
            .send(Msg::Op(Box::new(op)))
            .map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    /// Runs `f` on a reader connection.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn| {
            let out = catch_unwind(AssertUnwindSafe(|| f(conn)))
                .unwrap_or_else(|_| Err(StoreError::Backend("a store read panicked".into())));
            let _ = reply.send(out);
        });
        self.readers.send(job).map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    /// Commits everything queued so far, stops the writer and waits for it.
    pub fn close(&self) {
        drop(
            self.checkpointer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        let _ = self.writer.send(Msg::Shutdown);
        let handle = self
            .writer_thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        self.close();
    }
}

fn writer_loop(mut conn: Connection, rx: flume::Receiver<Msg>) {
    let mut batch: Vec<Box<dyn WriteOp>> = Vec::with_capacity(MAX_BATCH);
    loop {
        let mut stop = false;
        match rx.recv() {
            Ok(Msg::Op(op)) => batch.push(op),
            Ok(Msg::Shutdown) | Err(_) => break,
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Msg::Op(op)) => batch.push(op),
                Ok(Msg::Shutdown) => {
                    stop = true;
                    break;
                }
                Err(_) => break,
            }
        }
        let commit = run_batch(&mut conn, &mut batch);
        metrics::counter!(orderly_core::metrics::STORE_WRITE_OPS).increment(batch.len() as u64);
        if commit.is_ok() {
            metrics::counter!(orderly_core::metrics::STORE_COMMITS).increment(1);
        }
        if let Err(e) = &commit {
            tracing::error!(error = %e, ops = batch.len(), "sqlite batch commit failed");
        }
        for op in batch.drain(..) {
            op.finish(commit.clone());
        }
        if stop {
            break;
        }
    }
    // Anything sent after shutdown is answered "shut down" by the dropped reply channels.
}

/// Copies committed WAL pages into the database file every [`CHECKPOINT_EVERY`] until the
/// sender is dropped. `PASSIVE` never blocks the writer or the readers; it copies what no
/// reader still needs, and the writer starts the WAL over once everything was copied.
fn checkpointer_loop(conn: Connection, stop: flume::Receiver<()>) {
    while let Err(flume::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "WAL checkpoint failed; retrying");
        }
    }
}

fn run_batch(conn: &mut Connection, batch: &mut [Box<dyn WriteOp>]) -> Result<(), StoreError> {
    let mut tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(store_err)?;
    for op in batch.iter_mut() {
        let sp = tx.savepoint().map_err(store_err)?;
        if op.apply(&sp) {
            sp.commit().map_err(store_err)?;
        } else {
            // Dropping a savepoint rolls back just this operation.
            drop(sp);
        }
    }
    tx.commit().map_err(store_err)
}
