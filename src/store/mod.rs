//! The [`Store`]: a connection pool with the bursar schema, and the entry point
//! to every repository.

mod agent_keys;
pub(crate) mod agents;
pub(crate) mod approvals;
mod approvers;
mod blocked_attempts;
mod budgets;
mod cards;
pub(crate) mod cross_tenant;
pub(crate) mod group_commit;
mod intents;
mod members;
pub(crate) mod merchants;
pub(crate) mod meter;
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
    AgentKeyRepository, AgentKeys, IssuedKey, KEY_LEN, KEY_MARKER, LAST_USED_PRECISION,
    MAX_LIVE_KEYS_PER_AGENT, VerifiedKey,
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
pub use group_commit::{
    GroupCommit, GroupCommitStats, MAX_GROUP_COMMIT_BATCH, MAX_GROUP_COMMIT_WAIT,
};
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
pub use repo::MAX_CONTENTION_ATTEMPTS;
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
///
/// Both variants exist in every build; a [`Store`] connects only to those
/// whose driver is compiled in (Cargo features `sqlite` and `postgres`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// SQLite, in memory or in a file.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// Whether bursar names the tenant to PostgreSQL's row-level-security
/// policies. Set with [`StoreBuilder::row_level_security`]; see
/// `docs/security.md` ("Row-level security") for the role setup each mode
/// is for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RowLevelSecurity {
    /// The default: bursar sends no setting. For a host that connects as the
    /// role that owns the tables (the one that ran the migrations) while the
    /// policies are not forced: PostgreSQL does not apply them to the owner,
    /// and [`TenantScope`] is the isolation. A role the policies apply to
    /// sees no tenant-owned row in this mode.
    #[default]
    Bypassed,
    /// On PostgreSQL every transaction bursar opens for a tenant runs
    /// `SELECT set_config('bursar.tenant_id', <tenant>, true)` right after
    /// `BEGIN`, and a scoped statement that would run on the pool outside a
    /// transaction (a read) runs inside a short transaction that does the
    /// same. For a host that connects as a non-owner role, or as the owner
    /// with the policies forced ([`Store::force_row_level_security`]): the
    /// database then confines every query to the scope's tenant as well.
    /// Costs one round trip per write transaction and three per read outside
    /// one (`docs/performance.md`). On SQLite it changes nothing.
    Enforced,
}

/// What [`StoreBuilder::on_statement`] keeps.
type StatementHook = Arc<dyn Fn(&sea_orm::metric::Info<'_>) + Send + Sync>;

/// How to open a [`Store`]. Start from [`Store::builder`].
#[derive(Clone)]
pub struct StoreBuilder {
    url: String,
    row_level_security: RowLevelSecurity,
    max_connections: Option<u32>,
    busy_timeout: Duration,
    acquire_timeout: Duration,
    migrate: bool,
    clock: Arc<dyn Clock>,
    on_statement: Option<StatementHook>,
    group_commit: Option<GroupCommit>,
    // Read only when connecting to SQLite.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    sqlite_pragmas: Vec<(String, String)>,
}

impl std::fmt::Debug for StoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreBuilder")
            .field("url", &redact(&self.url))
            .field("row_level_security", &self.row_level_security)
            .field("max_connections", &self.max_connections)
            .field("busy_timeout", &self.busy_timeout)
            .field("migrate", &self.migrate)
            .field("on_statement", &self.on_statement.is_some())
            .field("group_commit", &self.group_commit)
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

    /// Whether bursar names each scope's tenant to PostgreSQL's row-level
    /// security (default [`RowLevelSecurity::Bypassed`]).
    ///
    /// ```
    /// use bursar::store::RowLevelSecurity;
    /// let builder = bursar::Store::builder("postgres://bursar_app@localhost/bursar")
    ///     .row_level_security(RowLevelSecurity::Enforced)
    ///     .migrate(false);
    /// # let _ = builder;
    /// ```
    #[must_use]
    pub fn row_level_security(mut self, mode: RowLevelSecurity) -> Self {
        self.row_level_security = mode;
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

    /// Calls `hook` after every statement the store sends to the database
    /// once it is connected, with its SQL, its bound values, how long it took
    /// and whether it failed (SeaORM's [`sea_orm::metric::Info`]): for logging
    /// slow statements, counting round trips, or checking which statements
    /// bursar issues (`tests/statements_name_their_tenant.rs` records them to
    /// show that each one names its tenant, see `docs/scaling.md`). The
    /// migrations run before it is installed; `BEGIN`, `COMMIT` and
    /// `ROLLBACK` are not statements it sees. It runs on the task that issued
    /// the statement, so it should be quick and must not block.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), bursar::Error> {
    /// use std::sync::{Arc, Mutex};
    /// use bursar::store::{NewTenant, TenantRepository};
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = Arc::clone(&seen);
    /// let store = bursar::Store::builder("sqlite::memory:")
    ///     .on_statement(move |info| log.lock().unwrap().push(info.statement.sql.clone()))
    ///     .connect()
    ///     .await?;
    /// store.tenants().create(NewTenant::new("Acme", "acme")).await?;
    /// assert!(seen.lock().unwrap().iter().any(|sql| sql.starts_with(r#"INSERT INTO "tenants""#)));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn on_statement<F>(mut self, hook: F) -> Self
    where
        F: Fn(&sea_orm::metric::Info<'_>) + Send + Sync + 'static,
    {
        self.on_statement = Some(Arc::new(hook));
        self
    }

    /// Coalesces one tenant's concurrent authorizations and reservations
    /// inside this process into one database transaction (off unless set);
    /// see [`GroupCommit`] for what it changes and what it does not.
    ///
    /// ```
    /// use bursar::store::GroupCommit;
    /// let builder = bursar::Store::builder("sqlite::memory:").group_commit(GroupCommit::new());
    /// # let _ = builder;
    /// ```
    #[must_use]
    pub fn group_commit(mut self, config: GroupCommit) -> Self {
        self.group_commit = Some(config);
        self
    }

    /// Connects, and runs pending migrations unless told not to.
    ///
    /// # Errors
    /// [`Error::Invalid`] (field `url`) for a URL that is neither `sqlite:` nor
    /// `postgres://`/`postgresql://`, or whose driver this build leaves out
    /// (the crate's `sqlite` and `postgres` features), and (fields
    /// `group_commit.max_batch`, `group_commit.max_wait`) for a
    /// [`GroupCommit`] out of bounds; [`Error::Database`] when the database
    /// cannot be reached or migrated.
    pub async fn connect(self) -> Result<Store> {
        if let Some(config) = &self.group_commit {
            config.validate()?;
        }
        let backend = backend_of(&self.url)?;
        let mut options = ConnectOptions::new(self.url.clone());
        options
            .acquire_timeout(self.acquire_timeout)
            .sqlx_logging(false);
        match backend {
            #[cfg(feature = "sqlite")]
            Backend::Sqlite => self.sqlite_options(&mut options),
            #[cfg(feature = "postgres")]
            Backend::Postgres => {
                options
                    .max_connections(self.max_connections.unwrap_or(8))
                    .map_sqlx_postgres_pool_opts(|o| {
                        o.after_release(|conn, _| Box::pin(reusable(conn)))
                    });
            }
            // `backend_of` returns only the backends whose driver is compiled.
            #[allow(unreachable_patterns)]
            other => return Err(missing_driver(other, &self.url)),
        }
        let mut db = Database::connect(options).await?;
        if self.migrate {
            bursar_migration::Migrator::up(&db, None).await?;
        }
        if let Some(hook) = self.on_statement {
            db.set_metric_callback(move |info| hook(info));
        }
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                backend,
                row_level_security: self.row_level_security,
                clock: self.clock,
                policies: policies::PolicyCache::default(),
                writers: (backend == Backend::Sqlite)
                    .then(|| repo::Writers::new(self.busy_timeout)),
                batcher: self.group_commit.map(group_commit::Batcher::new),
            }),
        })
    }
}

#[cfg(feature = "sqlite")]
impl StoreBuilder {
    /// The pool and connection options of a SQLite store.
    fn sqlite_options(&self, options: &mut ConnectOptions) {
        let in_memory = is_sqlite_memory(&self.url);
        options.max_connections(
            self.max_connections
                .unwrap_or(if in_memory { 4 } else { 8 }),
        );
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
            // A SQLite connection lives in this process: there is no server
            // that could have dropped it while idle, so it is not pinged
            // before each use (a round trip to its worker thread). The
            // release check below still closes one left in a transaction.
            let o = o
                .test_before_acquire(false)
                .after_release(|conn, _| Box::pin(reusable(conn)));
            if in_memory {
                // The database lives as long as one connection to it
                // does: keep one open and never retire it.
                o.min_connections(1).idle_timeout(None).max_lifetime(None)
            } else {
                o
            }
        });
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
    row_level_security: RowLevelSecurity,
    clock: Arc<dyn Clock>,
    policies: policies::PolicyCache,
    /// SQLite: the line its write transactions wait in.
    writers: Option<repo::Writers>,
    /// With group commit: each tenant's batch in flight.
    batcher: Option<group_commit::Batcher>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.inner.backend)
            .field("row_level_security", &self.inner.row_level_security)
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
            row_level_security: RowLevelSecurity::default(),
            max_connections: None,
            busy_timeout: Duration::from_secs(30),
            acquire_timeout: Duration::from_secs(30),
            migrate: true,
            clock: Arc::new(SystemClock),
            on_statement: None,
            group_commit: None,
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

    /// Whether this store names the tenant to row-level security
    /// ([`StoreBuilder::row_level_security`]).
    #[must_use]
    pub fn row_level_security(&self) -> RowLevelSecurity {
        self.inner.row_level_security
    }

    /// Whether statements for a tenant must name it: PostgreSQL with
    /// [`RowLevelSecurity::Enforced`].
    pub(crate) fn confines(&self) -> bool {
        self.inner.backend == Backend::Postgres
            && self.inner.row_level_security == RowLevelSecurity::Enforced
    }

    /// SQLite: the line the store's write transactions wait in.
    pub(crate) fn writers(&self) -> Option<&repo::Writers> {
        self.inner.writers.as_ref()
    }

    /// With group commit: the per-tenant batches.
    pub(crate) fn batcher(&self) -> Option<&group_commit::Batcher> {
        self.inner.batcher.as_ref()
    }

    /// The group commit this store was built with
    /// ([`StoreBuilder::group_commit`]), if any.
    #[must_use]
    pub fn group_commit(&self) -> Option<GroupCommit> {
        self.batcher().map(group_commit::Batcher::config)
    }

    /// What group commit did so far: batches ended, failed, and the requests
    /// they held (for metrics: `requests / batches` is the mean batch size);
    /// `None` without group commit.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), bursar::Error> {
    /// use bursar::store::GroupCommit;
    /// let store = bursar::Store::builder("sqlite::memory:")
    ///     .group_commit(GroupCommit::new())
    ///     .connect()
    ///     .await?;
    /// assert_eq!(store.group_commit_stats().map(|s| s.batches), Some(0));
    /// assert!(bursar::Store::connect("sqlite::memory:").await?.group_commit_stats().is_none());
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn group_commit_stats(&self) -> Option<GroupCommitStats> {
        self.batcher().map(group_commit::Batcher::stats)
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
        Tenants::new(self)
    }

    /// Creates and finds users: global identities that may belong to several
    /// tenants.
    #[must_use]
    pub fn users(&self) -> Users<'_> {
        Users::new(self)
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
        let tenants = cross_tenant::tenant_ids(self.connection()).await?;
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
        let tenants = cross_tenant::tenant_ids(self.connection()).await?;
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

    /// Forces (`force = true`) row-level security on every tenant-owned table,
    /// so that its policies confine the tables' owner too, or stops forcing
    /// it; see [`bursar_migration::force_row_level_security`]. Run it through
    /// a store connected as the owner. Once forced, every store that connects
    /// as the owner needs [`RowLevelSecurity::Enforced`]. On SQLite it does
    /// nothing.
    ///
    /// # Errors
    /// [`Error::Database`], e.g. when the connected role does not own the tables.
    pub async fn force_row_level_security(&self, force: bool) -> Result<()> {
        Ok(bursar_migration::force_row_level_security(self.connection(), force).await?)
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
/// commits, holding the write lock. So: a connection the driver sees outside
/// any transaction is reused at once (the common case: its transaction was
/// committed or rolled back and awaited, so nothing is queued); otherwise
/// flush whatever rollback is queued (`ping`), and close the connection unless
/// it is then cleanly outside any transaction. Closing it ends whatever SQLite
/// still holds; the pool opens a fresh one when needed.
async fn reusable<C: sqlx::Connection>(conn: &mut C) -> std::result::Result<bool, sqlx::Error> {
    if !conn.is_in_transaction() {
        return Ok(true);
    }
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

/// The backend `url` names, when its driver is compiled into this build.
fn backend_of(url: &str) -> Result<Backend> {
    let backend = if url.starts_with("sqlite:") {
        Backend::Sqlite
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Backend::Postgres
    } else {
        return Err(Error::invalid(
            "url",
            format!(
                "{:?} names no supported database; expected {}",
                redact(url),
                compiled_schemes()
            ),
        ));
    };
    if backend.compiled() {
        Ok(backend)
    } else {
        Err(missing_driver(backend, url))
    }
}

impl Backend {
    /// The Cargo feature that compiles this backend's driver.
    fn feature(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// Whether this build has this backend's driver.
    fn compiled(self) -> bool {
        match self {
            Backend::Sqlite => cfg!(feature = "sqlite"),
            Backend::Postgres => cfg!(feature = "postgres"),
        }
    }
}

/// The URL schemes this build connects to, for messages.
fn compiled_schemes() -> &'static str {
    match (cfg!(feature = "sqlite"), cfg!(feature = "postgres")) {
        (true, true) => "sqlite:… or postgres://…",
        (true, false) => "sqlite:… (this build has no PostgreSQL driver)",
        _ => "postgres://… (this build has no SQLite driver)",
    }
}

/// The error for a URL whose backend's driver this build does not compile.
fn missing_driver(backend: Backend, url: &str) -> Error {
    Error::invalid(
        "url",
        format!(
            "{:?} needs bursar's `{}` feature, which this build does not enable; expected {}",
            redact(url),
            backend.feature(),
            compiled_schemes()
        ),
    )
}

#[cfg(feature = "sqlite")]
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
        #[cfg(feature = "sqlite")]
        assert_eq!(backend_of("sqlite::memory:").unwrap(), Backend::Sqlite);
        #[cfg(feature = "postgres")]
        assert_eq!(backend_of("postgresql://a@b/c").unwrap(), Backend::Postgres);
        let err = backend_of("mysql://root:hunter2@localhost/db").unwrap_err();
        assert_eq!(err.code(), "invalid");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(
            err.to_string().contains("mysql://root:***@localhost/db"),
            "{err}"
        );
    }

    /// The URL's field, and the message, of the error for `url`.
    #[cfg(not(all(feature = "sqlite", feature = "postgres")))]
    fn refusal(url: &str) -> (String, String) {
        match backend_of(url) {
            Err(Error::Invalid { field, reason }) => (field, reason),
            other => panic!("{url}: expected Error::Invalid, got {other:?}"),
        }
    }

    #[cfg(not(feature = "postgres"))]
    #[tokio::test]
    async fn a_postgres_url_without_the_postgres_feature_names_the_feature() {
        let (field, reason) = refusal("postgres://bursar:hunter2@db.internal/bursar");
        assert_eq!(field, "url");
        assert!(reason.contains("`postgres` feature"), "{reason}");
        assert!(reason.contains("expected sqlite:"), "{reason}");
        assert!(!reason.contains("hunter2"), "{reason}");
        // The same refusal from `connect`, before any connection is tried.
        let err = Store::connect("postgresql://bursar@db.internal/bursar")
            .await
            .unwrap_err();
        assert_eq!(err.code(), "invalid");
        assert!(err.to_string().contains("`postgres` feature"), "{err}");
    }

    #[cfg(not(feature = "sqlite"))]
    #[tokio::test]
    async fn a_sqlite_url_without_the_sqlite_feature_names_the_feature() {
        let (field, reason) = refusal("sqlite://bursar.db?mode=rwc");
        assert_eq!(field, "url");
        assert!(reason.contains("`sqlite` feature"), "{reason}");
        assert!(reason.contains("expected postgres://"), "{reason}");
        let err = Store::connect("sqlite::memory:").await.unwrap_err();
        assert_eq!(err.code(), "invalid");
        assert!(err.to_string().contains("`sqlite` feature"), "{err}");
    }
}
