//! The [`Store`]: a connection pool with the bursar schema, and the entry point
//! to every repository.

mod agent_keys;
pub(crate) mod agents;
pub(crate) mod approvals;
mod approvers;
mod blocked_attempts;
mod budgets;
mod cards;
mod intents;
mod members;
pub(crate) mod merchants;
mod meter;
mod payments;
pub(crate) mod policies;
pub(crate) mod repo;
pub mod reservations;
mod roles;
pub(crate) mod runs;
mod scope;
pub(crate) mod status;
mod teams;
pub(crate) mod tenants;
mod transactions;

pub use crate::page::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page, PageRequest};
pub use agent_keys::{
    AgentKeyRepository, AgentKeys, IssuedKey, KEY_LEN, KEY_MARKER, MAX_LIVE_KEYS_PER_AGENT,
    VerifiedKey,
};
pub use agents::{AgentRepository, Agents, MAX_METADATA_ENTRIES, MAX_METADATA_LEN, NewAgent};
pub use approvals::{
    ApprovalRepository, ApprovalState, ApprovalSweep, Approvals, Canceller, MAX_COMMENT_LEN,
};
pub use blocked_attempts::{BlockedAttemptRepository, BlockedAttempts};
pub use budgets::{
    BudgetRepository, BudgetStatus, Budgets, MAX_ALERT_PERCENT, MAX_ALERT_THRESHOLDS, NewBudget,
};
pub use cards::{CardRepository, Cards};
pub use intents::{PurchaseIntentRepository, PurchaseIntents};
pub use members::{
    MAX_AUTH_PROVIDER_LEN, MAX_EMAIL_LEN, MAX_EXTERNAL_ID_LEN, MemberRepository, Members, NewUser,
    UserRepository, Users, normalize_email,
};
pub use merchants::{MAX_MERCHANT_LEN, MerchantRepository, Merchants, normalize_merchant_name};
pub use meter::{
    MAX_MODEL_LEN, MAX_PROVIDER_LEN, Meter, MeterRequest, NewPrice, Prices, Usage, UsageFilter,
    UsageTotals,
};
pub use payments::{
    CardIssuer, CardRequest, ChargeStatus, FakeCardIssuer, MAX_PROVIDER_ID_LEN, PaymentRepository,
    Payments, ProviderCard, Recorded, TransactionEvent,
};
pub use policies::{Policies, PolicyRepository};
pub use reservations::{
    Discrepancy, Reconciliation, ReservationRepository, Reservations, ReserveOutcome,
    ReserveRequest,
};
pub use roles::{MAX_ROLE_NAME_LEN, NewRole, RoleRepository, Roles, builtin, permissions};
pub use runs::{MAX_ALLOWED_ENTRIES, MAX_KILL_REASON_LEN, NewRun, RunState, Runs};
pub use scope::TenantScope;
pub use teams::{NewGroup, ProjectRepository, Projects, TeamRepository, Teams};
pub use tenants::{
    MAX_APPROVAL_TTL_SECS, MAX_NOTIFICATION_EMAIL_LEN, MAX_RESERVATION_TTL_SECS, NewTenant,
    TenantRepository, TenantUpdate, Tenants,
};
pub use transactions::{TransactionRepository, Transactions};

use std::sync::Arc;
use std::time::Duration;

use bursar_migration::MigratorTrait;
use sea_orm::{ConnectOptions, Database, DatabaseConnection};

use crate::clock::{Clock, SystemClock};
use crate::{Error, Result};

/// What [`Store::expire_due_all`] did.
#[derive(Debug, Default)]
pub struct Sweep {
    /// Tenants swept (including those that failed).
    pub tenants: usize,
    /// Reservations expired, over all tenants.
    pub expired: u64,
    /// The tenants whose sweep failed, with the error; the others were swept.
    pub failures: Vec<(crate::id::TenantId, Error)>,
}

/// What [`Store::expire_and_escalate_due_all`] changed, over all tenants.
#[derive(Debug, Default)]
pub struct ApprovalSweepAll {
    /// The requests escalated.
    pub escalated: Vec<crate::id::ApprovalRequestId>,
    /// The requests expired.
    pub expired: Vec<crate::id::ApprovalRequestId>,
    /// The tenants whose sweep failed, with the error; the others were swept.
    pub failures: Vec<(crate::id::TenantId, Error)>,
}

impl Sweep {
    /// Whether every tenant was swept without error.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Which database a [`Store`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// SQLite, in memory or in a file.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// How to open a [`Store`]. Start from [`Store::builder`].
#[derive(Clone)]
pub struct StoreBuilder {
    url: String,
    max_connections: Option<u32>,
    busy_timeout: Duration,
    acquire_timeout: Duration,
    migrate: bool,
    clock: Arc<dyn Clock>,
    sqlite_pragmas: Vec<(String, String)>,
}

impl std::fmt::Debug for StoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreBuilder")
            .field("url", &redact(&self.url))
            .field("max_connections", &self.max_connections)
            .field("busy_timeout", &self.busy_timeout)
            .field("migrate", &self.migrate)
            .finish_non_exhaustive()
    }
}

impl StoreBuilder {
    /// Largest pool size (default: 8 for PostgreSQL and file SQLite, 4 for
    /// in-memory SQLite).
    #[must_use]
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = Some(n.max(1));
        self
    }

    /// How long a SQLite writer waits for the database lock before giving up
    /// (default 30 s).
    #[must_use]
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// How long to wait for a pooled connection (default 30 s).
    #[must_use]
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Sets `PRAGMA key = value` on every SQLite connection the pool opens
    /// (ignored on PostgreSQL), after bursar's own (`foreign_keys`,
    /// `busy_timeout`, and for files `journal_mode = WAL` and
    /// `synchronous = NORMAL`). For example `max_page_count` caps the size of
    /// the database file, and `cache_size` tunes memory.
    ///
    /// ```
    /// let builder = bursar::Store::builder("sqlite::memory:").sqlite_pragma("cache_size", "-4096");
    /// # let _ = builder;
    /// ```
    #[must_use]
    pub fn sqlite_pragma(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.sqlite_pragmas.push((key.into(), value.into()));
        self
    }

    /// Whether [`StoreBuilder::connect`] runs pending migrations (default true).
    #[must_use]
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// The clock every time-dependent decision reads (default: the system clock).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Connects, and runs pending migrations unless told not to.
    ///
    /// # Errors
    /// [`Error::Invalid`] (field `url`) for a URL that is neither `sqlite:` nor
    /// `postgres:`/`postgresql:`; [`Error::Database`] when the database cannot
    /// be reached or migrated.
    pub async fn connect(self) -> Result<Store> {
        let backend = backend_of(&self.url)?;
        let in_memory = backend == Backend::Sqlite && is_sqlite_memory(&self.url);
        let mut options = ConnectOptions::new(self.url.clone());
        options
            .max_connections(
                self.max_connections
                    .unwrap_or(if in_memory { 4 } else { 8 }),
            )
            .acquire_timeout(self.acquire_timeout)
            .sqlx_logging(false);
        if backend == Backend::Sqlite {
            let busy = self.busy_timeout;
            let pragmas = self.sqlite_pragmas.clone();
            options.map_sqlx_sqlite_opts(move |o| {
                let o = o.foreign_keys(true).busy_timeout(busy);
                // `sqlite::memory:` already means a uniquely named,
                // shared-cache database, so every pooled connection sees
                // the same tables.
                let o = if in_memory {
                    o
                } else {
                    o.journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                        .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                };
                pragmas
                    .iter()
                    .fold(o, |o, (key, value)| o.pragma(key.clone(), value.clone()))
            });
            options.map_sqlx_sqlite_pool_opts(move |o| {
                let o = o.after_release(|conn, _| Box::pin(reusable(conn)));
                if in_memory {
                    // The database lives as long as one connection to it
                    // does: keep one open and never retire it.
                    o.min_connections(1).idle_timeout(None).max_lifetime(None)
                } else {
                    o
                }
            });
        } else {
            options.map_sqlx_postgres_pool_opts(|o| {
                o.after_release(|conn, _| Box::pin(reusable(conn)))
            });
        }
        let db = Database::connect(options).await?;
        if self.migrate {
            bursar_migration::Migrator::up(&db, None).await?;
        }
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                backend,
                clock: self.clock,
                policies: policies::PolicyCache::default(),
            }),
        })
    }
}

/// A handle on the bursar database: a connection pool plus the clock. Cheap to
/// clone; clones share the pool.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bursar::Error> {
/// let store = bursar::Store::connect("sqlite::memory:").await?;
/// assert_eq!(store.backend(), bursar::store::Backend::Sqlite);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: DatabaseConnection,
    backend: Backend,
    clock: Arc<dyn Clock>,
    policies: policies::PolicyCache,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.inner.backend)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Connects to `url` and runs pending migrations.
    ///
    /// * `sqlite::memory:` — a private in-memory database shared by every
    ///   connection of this store's pool, gone when the store is dropped;
    /// * `sqlite://path/to/file.db?mode=rwc` — a file, in WAL mode with a busy
    ///   timeout, so several connections and processes can share it;
    /// * `postgres://user@host:5432/db` — PostgreSQL with a normal pool.
    ///
    /// # Errors
    /// See [`StoreBuilder::connect`].
    pub async fn connect(url: &str) -> Result<Self> {
        Self::builder(url).connect().await
    }

    /// Options for connecting to `url`.
    #[must_use]
    pub fn builder(url: &str) -> StoreBuilder {
        StoreBuilder {
            url: url.to_owned(),
            max_connections: None,
            busy_timeout: Duration::from_secs(30),
            acquire_timeout: Duration::from_secs(30),
            migrate: true,
            clock: Arc::new(SystemClock),
            sqlite_pragmas: Vec::new(),
        }
    }

    /// The SeaORM connection, for queries bursar has no method for.
    #[must_use]
    pub fn connection(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    /// The database kind.
    #[must_use]
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    pub(crate) fn policy_cache(&self) -> &policies::PolicyCache {
        &self.inner.policies
    }

    /// The clock this store reads.
    #[must_use]
    pub fn clock(&self) -> &dyn Clock {
        self.inner.clock.as_ref()
    }

    /// Creates and finds tenants.
    #[must_use]
    pub fn tenants(&self) -> Tenants<'_> {
        Tenants::new(self.connection(), self.clock())
    }

    /// Creates and finds users: global identities that may belong to several
    /// tenants.
    #[must_use]
    pub fn users(&self) -> Users<'_> {
        Users::new(self.connection(), self.clock())
    }

    /// Everything about one tenant, and nothing about any other.
    #[must_use]
    pub fn tenant(&self, id: crate::id::TenantId) -> TenantScope {
        TenantScope::new(self.clone(), id)
    }

    /// Expires every tenant's held reservations whose expiry has passed, and
    /// the pending approvals that own them (see [`ReservationRepository::expire_due`]),
    /// one tenant at a time so that every query stays confined to one tenant.
    /// A tenant that fails does not stop the sweep: its error is reported in
    /// [`Sweep::failures`] and the other tenants are still swept. Run it
    /// periodically from one or several processes.
    ///
    /// # Errors
    /// [`Error::Database`] only when the list of tenants cannot be read.
    #[tracing::instrument(level = "info", name = "bursar.store.expire_due_all", skip_all)]
    pub async fn expire_due_all(&self, now: chrono::DateTime<chrono::Utc>) -> Result<Sweep> {
        use sea_orm::{EntityTrait, QueryOrder, QuerySelect};
        let tenants: Vec<crate::id::TenantId> = crate::entity::tenant::Entity::find()
            .select_only()
            .column(crate::entity::tenant::Column::Id)
            .order_by_asc(crate::entity::tenant::Column::Id)
            .into_tuple()
            .all(self.connection())
            .await?;
        let mut sweep = Sweep::default();
        for tenant in tenants {
            sweep.tenants += 1;
            match self.tenant(tenant).reservations().expire_due(now).await {
                Ok(n) => sweep.expired += n,
                Err(error) => sweep.failures.push((tenant, error)),
            }
        }
        Ok(sweep)
    }

    /// Escalates and expires every tenant's due approval requests (see
    /// [`ApprovalRepository::expire_and_escalate_due`]), one tenant at a
    /// time. A tenant that fails does not stop the sweep: its error is
    /// reported in [`ApprovalSweepAll::failures`].
    ///
    /// # Errors
    /// [`Error::Database`] only when the list of tenants cannot be read.
    #[tracing::instrument(
        level = "info",
        name = "bursar.store.expire_and_escalate_due_all",
        skip_all
    )]
    pub async fn expire_and_escalate_due_all(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<ApprovalSweepAll> {
        use sea_orm::{EntityTrait, QueryOrder, QuerySelect};
        let tenants: Vec<crate::id::TenantId> = crate::entity::tenant::Entity::find()
            .select_only()
            .column(crate::entity::tenant::Column::Id)
            .order_by_asc(crate::entity::tenant::Column::Id)
            .into_tuple()
            .all(self.connection())
            .await?;
        let mut sweep = ApprovalSweepAll::default();
        for tenant in tenants {
            match self
                .tenant(tenant)
                .approvals()
                .expire_and_escalate_due(now)
                .await
            {
                Ok(done) => {
                    sweep.escalated.extend(done.escalated);
                    sweep.expired.extend(done.expired);
                }
                Err(error) => sweep.failures.push((tenant, error)),
            }
        }
        Ok(sweep)
    }

    /// Closes the pool.
    ///
    /// # Errors
    /// [`Error::Database`] when closing fails.
    pub async fn close(self) -> Result<()> {
        match Arc::try_unwrap(self.inner) {
            Ok(inner) => Ok(inner.db.close().await?),
            // Other clones keep the pool alive; it closes with the last one.
            Err(_) => Ok(()),
        }
    }
}

/// Whether a connection coming back to the pool may be handed out again.
///
/// A failed `COMMIT` or `ROLLBACK` leaves the driver's transaction depth
/// behind the database's real state: SQLite rolls a transaction back by itself
/// on a full disk or an I/O error, after which the driver's `ROLLBACK` fails
/// and it goes on believing a transaction is open. Reused, such a connection
/// would run the next transaction as a savepoint inside one that never
/// commits, holding the write lock. So: flush whatever rollback is queued
/// (`ping`), and close the connection unless it is cleanly outside any
/// transaction. Closing it ends whatever SQLite still holds; the pool opens a
/// fresh one when needed.
async fn reusable<C: sqlx::Connection>(conn: &mut C) -> std::result::Result<bool, sqlx::Error> {
    conn.ping().await?;
    let clean = !conn.is_in_transaction();
    if !clean {
        tracing::warn!(
            target: "bursar::store",
            "closing a pooled connection left inside a transaction by a failed commit or rollback"
        );
    }
    Ok(clean)
}

fn backend_of(url: &str) -> Result<Backend> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else {
        Err(Error::invalid(
            "url",
            format!(
                "{:?} names no supported database; expected sqlite:… or postgres://…",
                redact(url)
            ),
        ))
    }
}

fn is_sqlite_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_recognised_and_passwords_never_shown() {
        assert_eq!(backend_of("sqlite::memory:").unwrap(), Backend::Sqlite);
        assert_eq!(backend_of("postgresql://a@b/c").unwrap(), Backend::Postgres);
        let err = backend_of("mysql://root:hunter2@localhost/db").unwrap_err();
        assert_eq!(err.code(), "invalid");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(
            err.to_string().contains("mysql://root:***@localhost/db"),
            "{err}"
        );
    }
}
