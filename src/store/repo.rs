//! What every repository shares: the executor it runs on, the tenant it is
//! confined to, the clock, and paging.

use chrono::{DateTime, Utc};
use sea_orm::{
    DatabaseExecutor, DatabaseTransaction, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::id::TenantId;
use crate::{Error, Result};

/// The connection (or transaction), tenant and clock a repository works with.
///
/// Repositories are built on a [`DatabaseExecutor`], so the same code runs on
/// the pool (through [`TenantScope`](crate::store::TenantScope)) or inside a
/// transaction someone else opened (as `authorize` does).
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    pub(crate) db: DatabaseExecutor<'a>,
    pub(crate) tenant: TenantId,
    pub(crate) clock: &'a dyn Clock,
}

impl std::fmt::Debug for dyn Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(
        db: impl Into<DatabaseExecutor<'a>>,
        tenant: TenantId,
        clock: &'a dyn Clock,
    ) -> Self {
        Self {
            db: db.into(),
            tenant,
            clock,
        }
    }

    /// The same executor, tenant and clock, borrowed: for calling another
    /// repository from inside one.
    pub(crate) fn reborrow(&self) -> Ctx<'_> {
        let db = match &self.db {
            DatabaseExecutor::Connection(c) => DatabaseExecutor::Connection(c),
            DatabaseExecutor::Transaction(t) => DatabaseExecutor::Transaction(t),
            DatabaseExecutor::OwnedTransaction(t) => DatabaseExecutor::Transaction(t),
        };
        Ctx {
            db,
            tenant: self.tenant,
            clock: self.clock,
        }
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// A write transaction: on the pool, `BEGIN IMMEDIATE` on SQLite (the write
    /// lock is taken at once, so writers queue on the busy timeout instead of
    /// failing on a lock upgrade); inside a transaction, a savepoint.
    pub(crate) async fn begin_write(&self) -> Result<DatabaseTransaction> {
        Ok(self
            .db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await?)
    }
}

/// Commits on `Ok`, rolls back on `Err`.
///
/// An `Ok` value is returned only once the commit succeeded: a failed commit
/// returns the commit's error, whatever `result` said. A failed rollback is
/// logged and `result`'s own error returned, since it says what went wrong.
/// Either way the connection's state is uncertain, and the pool's release
/// check closes it instead of handing it out again (see `Store`'s connect).
pub(crate) async fn finish<T>(txn: DatabaseTransaction, result: Result<T>) -> Result<T> {
    match result {
        Ok(value) => {
            txn.commit().await?;
            Ok(value)
        }
        Err(err) => {
            if let Err(rollback) = txn.rollback().await {
                tracing::warn!(
                    target: "bursar::store",
                    error = %rollback,
                    "rollback after a failed transaction failed"
                );
            }
            Err(err)
        }
    }
}

/// Rolls back a transaction whose result is already decided; a failing
/// rollback is logged, never allowed to replace that result (the connection
/// is checked before it is reused).
pub(crate) async fn discard(txn: DatabaseTransaction) {
    if let Err(rollback) = txn.rollback().await {
        tracing::warn!(
            target: "bursar::store",
            error = %rollback,
            "rollback of a finished transaction failed"
        );
    }
}

/// How many times bursar runs a write transaction that failed on contention
/// (a serialization failure, a deadlock, a busy SQLite database) before it
/// returns [`Error::Contention`] to the caller.
pub const MAX_CONTENTION_ATTEMPTS: u32 = 5;

/// Runs `attempt` (one whole write transaction, begun and finished inside it)
/// again while it fails with [`Error::Contention`], up to
/// [`MAX_CONTENTION_ATTEMPTS`] times, with a short growing pause between
/// tries. A contention failure has rolled the transaction back, so running it
/// again from the start is safe; any other result is returned as it is.
pub(crate) async fn retry_contention<T, F, Fut>(mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(Error::Contention { .. }) if tries < MAX_CONTENTION_ATTEMPTS => {
                tracing::warn!(target: "bursar::store", tries, "contention; running the transaction again");
                tokio::time::sleep(std::time::Duration::from_millis(u64::from(tries) * 5)).await;
                tries += 1;
            }
            other => return other,
        }
    }
}

/// Largest page a listing returns.
pub const MAX_PAGE_SIZE: u64 = 500;
/// Page size when none is asked for.
pub const DEFAULT_PAGE_SIZE: u64 = 50;

/// Which page of a listing to return, and what to filter it by.
///
/// ```
/// use bursar::store::PageRequest;
/// let first = PageRequest::new().limit(20);
/// assert_eq!(first.offset_value(), 0);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest {
    limit: Option<u64>,
    offset: u64,
    status: Option<String>,
    created_from: Option<DateTime<Utc>>,
    created_before: Option<DateTime<Utc>>,
}

impl PageRequest {
    /// The first page of [`DEFAULT_PAGE_SIZE`] rows, unfiltered.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// At most `limit` rows (1 to [`MAX_PAGE_SIZE`]).
    #[must_use]
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Skips the first `offset` rows.
    #[must_use]
    pub fn offset(mut self, offset: u64) -> Self {
        self.offset = offset;
        self
    }

    /// Only rows in this status (its stored name, e.g. `"active"`).
    #[must_use]
    pub fn status(mut self, status: impl Into<String>) -> Self {
        self.status = Some(status.into());
        self
    }

    /// Only rows created at or after `from` and before `before`.
    #[must_use]
    pub fn created_between(
        mut self,
        from: Option<DateTime<Utc>>,
        before: Option<DateTime<Utc>>,
    ) -> Self {
        self.created_from = from;
        self.created_before = before;
        self
    }

    /// The page size, checked against [`MAX_PAGE_SIZE`].
    ///
    /// # Errors
    /// [`Error::Invalid`] (field `limit`) for 0 or more than [`MAX_PAGE_SIZE`].
    pub fn limit_value(&self) -> Result<u64> {
        match self.limit {
            None => Ok(DEFAULT_PAGE_SIZE),
            Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
            Some(n) => Err(Error::invalid(
                "limit",
                format!("{n} is out of range; a page holds 1 to {MAX_PAGE_SIZE} rows"),
            )),
        }
    }

    /// Rows skipped.
    #[must_use]
    pub fn offset_value(&self) -> u64 {
        self.offset
    }

    /// The status filter.
    #[must_use]
    pub fn status_filter(&self) -> Option<&str> {
        self.status.as_deref()
    }

    /// The creation-time filter: `[from, before)`.
    #[must_use]
    pub fn created_range(&self) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        (self.created_from, self.created_before)
    }
}

/// One page of a listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Page<T> {
    /// The rows, oldest first.
    pub items: Vec<T>,
    /// The offset of the next page, when there may be one.
    pub next_offset: Option<u64>,
}

/// Builds a page from up to `limit + 1` rows fetched at `offset`.
pub(crate) fn page_of<T>(mut items: Vec<T>, offset: u64, limit: u64) -> Page<T> {
    let more = items.len() as u64 > limit;
    items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Page {
        next_offset: more.then(|| offset + limit),
        items,
    }
}

/// Runs a tenant-filtered `query` as one page: applies the page's creation-time
/// range on `created`, orders by `order` (oldest first) and pages.
pub(crate) async fn list_page<E>(
    db: &impl sea_orm::ConnectionTrait,
    mut query: sea_orm::Select<E>,
    created: E::Column,
    order: E::Column,
    page: &PageRequest,
) -> Result<Page<E::Model>>
where
    E: sea_orm::EntityTrait,
    E::Model: Send + Sync,
{
    use sea_orm::{ColumnTrait, QueryFilter, QueryOrder, QuerySelect};
    let limit = page.limit_value()?;
    let (from, before) = page.created_range();
    if let Some(from) = from {
        query = query.filter(created.gte(from));
    }
    if let Some(before) = before {
        query = query.filter(created.lt(before));
    }
    let items = query
        .order_by_asc(order)
        .offset(page.offset_value())
        .limit(limit + 1)
        .all(db)
        .await?;
    Ok(page_of(items, page.offset_value(), limit))
}
