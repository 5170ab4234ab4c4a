//! Group commit: one tenant's concurrent writes inside one process, coalesced
//! into one database transaction.
//!
//! A write that takes part ([`TenantScope::authorize`](crate::store::TenantScope::authorize)
//! and its variants, [`ReservationRepository::reserve`](crate::store::ReservationRepository::reserve))
//! is a [`Work`]: it runs inside a transaction it is handed and says what
//! became of it ([`Step`]). Without group commit, [`alone`] runs it in a
//! transaction of its own, as bursar always has. With it, [`together`] joins
//! the tenant's open [`Batch`]:
//!
//! * the first caller to take the batch's turn begins the transaction (on
//!   SQLite in the store's writers' line), after the tenant's previous batch
//!   of this process has ended;
//! * callers take turns in arrival order (a FIFO [`tokio::sync::Mutex`]), each
//!   running its own work against what the earlier ones wrote: the first one
//!   to write directly in the transaction, every later one inside a savepoint;
//! * a request's own failure (an invalid request, a key first used for
//!   another request, an error from the caller's hook) undoes only that
//!   request: its savepoint is rolled back, or, for the first one, the whole
//!   transaction, before anyone else runs;
//! * a database failure (or a failed `COMMIT`) fails the batch: it is rolled
//!   back and every caller gets the same error ([`copy_failure`]);
//! * a task the batch spawns ([`close`]) seals the batch once every caller
//!   that joined has finished its turn and the batch is full or
//!   [`GroupCommit::max_wait`] has passed, commits, and publishes the result
//!   every caller waits for.
//!
//! A caller whose future is dropped before its turn never runs; one dropped
//! during its turn is undone (its savepoint, or for the first one the whole
//! transaction, is rolled back before the next turn); one dropped after its
//! turn is committed with the batch, and a retry with the same idempotency
//! key returns that result.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sea_orm::{DatabaseTransaction, DbErr, TransactionTrait};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::id::TenantId;
use crate::store::repo::{Ctx, Write, discard};
use crate::{Error, Result};

/// Most requests one batch may hold ([`GroupCommit::max_batch`]).
pub const MAX_GROUP_COMMIT_BATCH: usize = 1024;

/// Longest time a batch may stay open for more requests
/// ([`GroupCommit::max_wait`]).
pub const MAX_GROUP_COMMIT_WAIT: Duration = Duration::from_secs(1);

/// How many times one request is run again in a batch after losing a race
/// on its idempotency key (as a transaction of its own would be).
const MAX_ATTEMPTS: u32 = 5;

/// Group commit: concurrent writes of one tenant inside one process share one
/// database transaction. Set with
/// [`StoreBuilder::group_commit`](crate::store::StoreBuilder::group_commit);
/// off unless set.
///
/// While a batch's transaction is open, every
/// [`TenantScope::authorize`](crate::store::TenantScope::authorize) (and
/// `authorize_with`, and the authorizations metering makes) and every
/// [`reserve`](crate::store::ReservationRepository::reserve) of the same
/// tenant that arrives joins it instead of opening a transaction of its own.
/// They run one after another in arrival order, each against the balances
/// the earlier ones left, so each gets exactly the result it would get alone
/// in that order; one `COMMIT` then makes them durable together. A request's
/// own failure (an invalid request, an idempotency key first used for
/// another request, an error from its hook) undoes that request only; a
/// database failure fails the whole batch and every caller in it gets the
/// same error, with nothing written. Across processes nothing changes: the
/// database's row locks order batches as they order single transactions.
///
/// A batch is sealed and committed once every request that joined it has
/// run and either it holds [`max_batch`](GroupCommit::max_batch) requests or
/// [`max_wait`](GroupCommit::max_wait) has passed since it opened. With the
/// default `max_wait` of zero a request never waits for company: requests
/// that arrive while the batch's earlier ones run join it.
///
/// A caller that gives up while waiting (its future dropped) never stalls
/// the batch: dropped before its turn, its request never runs; dropped after
/// its turn, its request commits with the batch (a retry with the same
/// idempotency key returns that result).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bursar::Error> {
/// use std::time::Duration;
/// use bursar::store::GroupCommit;
/// let store = bursar::Store::builder("sqlite::memory:")
///     .group_commit(GroupCommit::new().max_batch(64).max_wait(Duration::ZERO))
///     .connect()
///     .await?;
/// assert_eq!(store.group_commit().map(|g| g.max_batch_size()), Some(64));
///
/// // Out of bounds: refused when connecting, naming the field.
/// let err = bursar::Store::builder("sqlite::memory:")
///     .group_commit(GroupCommit::new().max_batch(0))
///     .connect()
///     .await
///     .unwrap_err();
/// assert_eq!(err.code(), "invalid");
/// assert!(err.to_string().contains("group_commit.max_batch"), "{err}");
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupCommit {
    max_batch: usize,
    max_wait: Duration,
}

impl Default for GroupCommit {
    fn default() -> Self {
        Self::new()
    }
}

impl GroupCommit {
    /// At most 64 requests per batch, and no waiting for more.
    #[must_use]
    pub fn new() -> Self {
        Self {
            max_batch: 64,
            max_wait: Duration::ZERO,
        }
    }

    /// Most requests one batch holds (default 64; 1 to
    /// [`MAX_GROUP_COMMIT_BATCH`]). A full batch takes no more: the next
    /// request opens the tenant's next batch, which begins once this one has
    /// ended.
    #[must_use]
    pub fn max_batch(mut self, n: usize) -> Self {
        self.max_batch = n;
        self
    }

    /// How long a batch stays open for more requests after it opened, when
    /// everyone in it has run and it is not full (default zero; at most
    /// [`MAX_GROUP_COMMIT_WAIT`]). A longer wait gathers larger batches at
    /// the price of that much latency for a request that comes alone.
    #[must_use]
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.max_wait = wait;
        self
    }

    /// The most requests one batch holds.
    #[must_use]
    pub fn max_batch_size(&self) -> usize {
        self.max_batch
    }

    /// How long a batch stays open for more requests.
    #[must_use]
    pub fn max_wait_time(&self) -> Duration {
        self.max_wait
    }

    /// Checks the bounds.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `group_commit.max_batch` or
    /// `group_commit.max_wait` and the value.
    pub(crate) fn validate(&self) -> Result<()> {
        if !(1..=MAX_GROUP_COMMIT_BATCH).contains(&self.max_batch) {
            return Err(Error::invalid(
                "group_commit.max_batch",
                format!(
                    "must be between 1 and {MAX_GROUP_COMMIT_BATCH}, got {}",
                    self.max_batch
                ),
            ));
        }
        if self.max_wait > MAX_GROUP_COMMIT_WAIT {
            return Err(Error::invalid(
                "group_commit.max_wait",
                format!(
                    "must be at most {} ms, got {} ms",
                    MAX_GROUP_COMMIT_WAIT.as_millis(),
                    self.max_wait.as_millis()
                ),
            ));
        }
        Ok(())
    }
}

/// What group commit did so far in this store: see [`Store::group_commit_stats`](crate::Store::group_commit_stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupCommitStats {
    /// Batches that ended (committed, or rolled back on a failure).
    pub batches: u64,
    /// Batches that ended in a failure every caller in them was given.
    pub failed: u64,
    /// Requests that ran in the batches that ended (a replay or a refused
    /// request counts; a caller that gave up before its turn does not).
    pub requests: u64,
}

/// What became of one request run inside a transaction.
pub(crate) enum Step<T> {
    /// Done, with writes to keep.
    Keep(T),
    /// Done, with nothing to keep (a replay, a refused reservation): a
    /// transaction of its own is rolled back.
    Read(T),
    /// The request's own failure: undo it; the caller gets the error.
    Refuse(Error),
    /// Lost a race on its idempotency key: undo it and run it again (a few
    /// times), after which the error is the caller's.
    Again(Error),
    /// The database failed: the whole transaction is lost.
    Fail(Error),
}

impl<T> Step<T> {
    /// A failure of the request's flow: the database's own failures fail the
    /// transaction, anything else is the request's.
    pub(crate) fn failed(err: Error) -> Self {
        if is_database_failure(&err) {
            Self::Fail(err)
        } else {
            Self::Refuse(err)
        }
    }
}

/// A failure of the database itself, rather than of one request.
fn is_database_failure(err: &Error) -> bool {
    matches!(
        err,
        Error::Database(_)
            | Error::Unavailable { .. }
            | Error::StorageFull { .. }
            | Error::Contention { .. }
    )
}

/// The same failure again, for every caller of a failed batch ([`Error`] is
/// not `Clone`). The database's own error is kept as text.
pub(crate) fn copy_failure(err: &Error) -> Error {
    match err {
        Error::Contention { reason } => Error::Contention {
            reason: reason.clone(),
        },
        Error::Unavailable { reason } => Error::Unavailable {
            reason: reason.clone(),
        },
        Error::StorageFull { reason } => Error::StorageFull {
            reason: reason.clone(),
        },
        Error::Database(db) => Error::Database(DbErr::Custom(db.to_string())),
        // Only the failures above fail a batch; anything else is kept as a
        // database error with its text.
        other => Error::Database(DbErr::Custom(other.to_string())),
    }
}

/// One write that can run alone or in a batch: run inside `txn`, it says what
/// became of it. It must not commit or roll back `txn`.
#[async_trait::async_trait]
pub(crate) trait Work: Send + Sync {
    /// What the caller gets.
    type Output: Send;

    /// Runs the request inside `txn`.
    async fn run(&self, txn: &DatabaseTransaction) -> Step<Self::Output>;
}

/// Runs `work` in a write transaction of its own, begun on `ctx`; a lost race
/// on an idempotency key runs it again in a new one.
async fn alone<W: Work>(ctx: &Ctx<'_>, work: &W) -> Result<W::Output> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let txn = ctx.begin_write().await?;
        match work.run(&txn).await {
            Step::Keep(value) => {
                txn.commit().await?;
                return Ok(value);
            }
            Step::Read(value) => {
                discard(txn).await;
                return Ok(value);
            }
            Step::Again(_) if attempts < MAX_ATTEMPTS => discard(txn).await,
            Step::Again(err) | Step::Refuse(err) | Step::Fail(err) => {
                discard(txn).await;
                return Err(err);
            }
        }
    }
}

/// Runs `work` for `ctx`'s tenant: in the tenant's current batch when `ctx`
/// is on a store with group commit, otherwise [`alone`] (without group
/// commit, or inside a transaction the caller holds).
pub(crate) async fn run<W: Work>(ctx: &Ctx<'_>, work: &W) -> Result<W::Output> {
    match ctx.store.and_then(|store| Some((store, store.batcher()?))) {
        Some((store, batcher)) => together(store, batcher, ctx.tenant, work).await,
        None => alone(ctx, work).await,
    }
}

/// Runs `work` in `tenant`'s current batch of `store`.
async fn together<W: Work>(
    store: &crate::Store,
    batcher: &Batcher,
    tenant: TenantId,
    work: &W,
) -> Result<W::Output> {
    // Joining is synchronous: a caller is in the batch, in arrival order, as
    // soon as it is first polled.
    let (batch, mut member) = batcher.join(store, tenant);
    let own = batch.turn(work).await;
    member.finish();
    match batch.outcome().await {
        Err(err) => Err(err),
        Ok(()) => own.unwrap_or_else(|| {
            Err(Error::Contention {
                reason: "the batch ended before this request ran".to_owned(),
            })
        }),
    }
}

/// The per-tenant batches of one store.
pub(crate) struct Batcher {
    config: GroupCommit,
    /// Each tenant's latest batch, while it has not ended (open, or sealed
    /// and committing); removed when it ends, so the map holds only tenants
    /// with a batch in flight.
    queues: Mutex<HashMap<TenantId, Arc<Batch>>>,
    batches: AtomicU64,
    failed: AtomicU64,
    requests: AtomicU64,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; a poisoned one is still
    // consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Batcher {
    pub(crate) fn new(config: GroupCommit) -> Self {
        Self {
            config,
            queues: Mutex::new(HashMap::new()),
            batches: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        }
    }

    pub(crate) fn config(&self) -> GroupCommit {
        self.config
    }

    pub(crate) fn stats(&self) -> GroupCommitStats {
        GroupCommitStats {
            batches: self.batches.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
        }
    }

    /// Joins `tenant`'s open batch, or opens one (and spawns the task that
    /// will commit it).
    fn join(&self, store: &crate::Store, tenant: TenantId) -> (Arc<Batch>, Member) {
        let mut queues = lock(&self.queues);
        let previous = match queues.get(&tenant) {
            Some(open) if open.admit() => {
                return (Arc::clone(open), Member::new(Arc::clone(open)));
            }
            other => other.cloned(),
        };
        let batch = Arc::new(Batch::new(store.clone(), tenant, previous, self.config));
        queues.insert(tenant, Arc::clone(&batch));
        drop(queues);
        tokio::spawn(close(Arc::clone(&batch)));
        let member = Member::new(Arc::clone(&batch));
        (batch, member)
    }

    /// Forgets `batch`, which has ended, unless a later one took its place.
    fn ended(&self, batch: &Arc<Batch>, requests: u64, failed: bool) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(requests, Ordering::Relaxed);
        if failed {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        let mut queues = lock(&self.queues);
        if queues
            .get(&batch.tenant)
            .is_some_and(|latest| Arc::ptr_eq(latest, batch))
        {
            queues.remove(&batch.tenant);
        }
    }
}

/// Who is in a batch: counted under one lock so that sealing and joining
/// never race.
struct Members {
    joined: usize,
    finished: usize,
    sealed: bool,
}

/// The transaction and what happened in it, behind the batch's turn.
struct Open {
    write: Option<Write>,
    /// The tenant's previous batch in this process, waited for before this
    /// one begins.
    previous: Option<Arc<Batch>>,
    /// Requests whose writes the transaction holds: the next one runs in a
    /// savepoint unless this is zero.
    applied: u64,
    /// Requests that ran to an end in this batch.
    ran: u64,
    /// A first request is running (or was dropped while running) directly
    /// in the transaction, without a savepoint.
    bare: bool,
    /// The database failure that ended the batch.
    failed: Option<Error>,
}

/// One batch of one tenant's requests.
struct Batch {
    store: crate::Store,
    tenant: TenantId,
    config: GroupCommit,
    opened: Instant,
    members: Mutex<Members>,
    /// Wakes the committing task when a member finishes.
    wake: tokio::sync::Notify,
    /// The turn: tokio's mutex is fair, so callers run in the order they
    /// asked for it, which is the order they joined.
    open: tokio::sync::Mutex<Open>,
    /// `None` until the batch has ended; then whether it committed.
    done: watch::Sender<Option<std::result::Result<(), Arc<Error>>>>,
}

impl Batch {
    fn new(
        store: crate::Store,
        tenant: TenantId,
        previous: Option<Arc<Batch>>,
        config: GroupCommit,
    ) -> Self {
        Self {
            store,
            tenant,
            config,
            opened: Instant::now(),
            members: Mutex::new(Members {
                joined: 1,
                finished: 0,
                sealed: config.max_batch <= 1,
            }),
            wake: tokio::sync::Notify::new(),
            open: tokio::sync::Mutex::new(Open {
                write: None,
                previous,
                applied: 0,
                ran: 0,
                bare: false,
                failed: None,
            }),
            done: watch::channel(None).0,
        }
    }

    /// Takes one more member, unless sealed; the last one that fits seals it.
    fn admit(&self) -> bool {
        let mut members = lock(&self.members);
        if members.sealed {
            return false;
        }
        members.joined += 1;
        if members.joined >= self.config.max_batch {
            members.sealed = true;
        }
        true
    }

    fn finish_one(&self) {
        lock(&self.members).finished += 1;
        self.wake.notify_one();
    }

    /// Waits until the batch has ended; its result.
    async fn outcome(&self) -> Result<()> {
        let mut done = self.done.subscribe();
        let ended = done.wait_for(Option::is_some).await;
        match ended.as_deref() {
            Ok(Some(Ok(()))) => Ok(()),
            Ok(Some(Err(err))) => Err(copy_failure(err)),
            // The committing task never ends without publishing, unless the
            // runtime is shutting down.
            Ok(None) | Err(_) => Err(Error::Unavailable {
                reason: "the batch's commit stopped before it ended".to_owned(),
            }),
        }
    }

    /// Runs `work` in its turn: `None` when the batch failed before or
    /// during it.
    async fn turn<W: Work>(&self, work: &W) -> Option<Result<W::Output>> {
        let mut guard = self.open.lock().await;
        let open = &mut *guard;
        if open.failed.is_some() {
            return None;
        }
        if open.bare {
            // The first request was dropped while it ran: undo it whole.
            if let Some(write) = open.write.take() {
                discard(write).await;
            }
            open.bare = false;
        }
        let mut attempts = 0;
        loop {
            attempts += 1;
            if open.write.is_none() {
                if let Some(previous) = open.previous.take() {
                    // Row locks would order the two anyway; waiting here
                    // keeps them from holding locks the other needs.
                    let _ = previous.outcome().await;
                }
                match Ctx::scoped(&self.store, self.tenant).begin_write().await {
                    Ok(write) => open.write = Some(write),
                    Err(err) => {
                        open.failed = Some(err);
                        return None;
                    }
                }
            }
            let write = open.write.as_ref()?;
            let bare = open.applied == 0;
            let step = if bare {
                open.bare = true;
                work.run(write).await
            } else {
                let savepoint = match TransactionTrait::begin(&**write).await {
                    Ok(savepoint) => savepoint,
                    Err(err) => {
                        open.failed = Some(err.into());
                        return None;
                    }
                };
                let step = work.run(&savepoint).await;
                let ended = match step {
                    Step::Keep(_) => savepoint.commit().await,
                    Step::Fail(_) => Ok(()),
                    _ => savepoint.rollback().await,
                };
                if let Err(err) = ended {
                    open.failed = Some(err.into());
                    return None;
                }
                step
            };
            let (err, again) = match step {
                Step::Keep(value) => {
                    open.bare = false;
                    open.applied += 1;
                    open.ran += 1;
                    return Some(Ok(value));
                }
                Step::Read(value) => {
                    // Nothing to keep. A first one leaves the transaction as
                    // it found it, so the next request runs directly in it
                    // too.
                    open.bare = false;
                    open.applied += u64::from(!bare);
                    open.ran += 1;
                    return Some(Ok(value));
                }
                Step::Fail(err) => {
                    open.failed = Some(err);
                    return None;
                }
                Step::Refuse(err) => (err, false),
                Step::Again(err) => (err, true),
            };
            if bare {
                // Undo the first request whole, before anyone else runs.
                if let Some(write) = open.write.take() {
                    discard(write).await;
                }
                open.bare = false;
            }
            if !again || attempts >= MAX_ATTEMPTS {
                open.ran += 1;
                return Some(Err(err));
            }
        }
    }
}

/// A caller in a batch: counted as finished when it says so or when it is
/// dropped (a caller that gave up), so the batch never waits for it.
struct Member {
    batch: Arc<Batch>,
    finished: bool,
}

impl Member {
    fn new(batch: Arc<Batch>) -> Self {
        Self {
            batch,
            finished: false,
        }
    }

    fn finish(&mut self) {
        if !self.finished {
            self.finished = true;
            self.batch.finish_one();
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The batch's own task: waits until it can be sealed, then ends it.
async fn close(batch: Arc<Batch>) {
    let deadline = batch.opened + batch.config.max_wait;
    loop {
        let everyone_ran = {
            let mut members = lock(&batch.members);
            let everyone_ran = members.finished >= members.joined;
            if everyone_ran && (members.sealed || Instant::now() >= deadline) {
                members.sealed = true;
                break;
            }
            everyone_ran
        };
        if everyone_ran {
            // Open for more until the deadline; a newcomer's finish wakes us.
            let _ = tokio::time::timeout_at(deadline, batch.wake.notified()).await;
        } else {
            batch.wake.notified().await;
        }
    }
    let mut open = batch.open.lock().await;
    let write = open.write.take();
    let result = match (open.failed.take(), write) {
        (Some(err), write) => {
            if let Some(write) = write {
                discard(write).await;
            }
            Err(err)
        }
        // Only a first request dropped while it ran: nothing to keep.
        (None, Some(write)) if open.bare => {
            discard(write).await;
            Ok(())
        }
        (None, Some(write)) => write.commit().await.map_err(Error::from),
        (None, None) => Ok(()),
    };
    let requests = open.ran;
    open.previous = None;
    drop(open);
    if let Err(err) = &result {
        tracing::warn!(
            target: "bursar::store",
            error = %err,
            requests,
            "a group-commit batch failed; every request in it gets the error"
        );
    }
    let failed = result.is_err();
    batch.done.send_replace(Some(result.map_err(Arc::new)));
    if let Some(batcher) = batch.store.batcher() {
        batcher.ended(&batch, requests, failed);
    }
}
