//! What every repository shares: the executor it runs on, the tenant it is
//! confined to, the clock, and how a write transaction ends or is retried.
//! Paging lives in `crate::page`.

use chrono::{DateTime, Utc};
use sea_orm::{
    DatabaseExecutor, DatabaseTransaction, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};

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
