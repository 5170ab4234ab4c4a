//! The tenant `benches/authorize.rs` authorizes on, shared with
//! `tests/authorize_baseline.rs`: an agent in a team under a three-level
//! budget hierarchy (agent daily, team monthly, tenant monthly), the
//! spending controls that approve its purchases, and a fresh database per
//! backend (in-memory SQLite, file SQLite in WAL mode, a PostgreSQL schema).
#![allow(dead_code)]

use std::sync::Arc;

use bursar::clock::ManualClock;
use bursar::id::{AgentId, TeamId, TenantId};
use bursar::money::Currency;
use bursar::policy::{Request, SpendingControls};
use bursar::store::{
    AgentRepository, BudgetRepository, NewAgent, NewBudget, NewGroup, NewTenant, TeamRepository,
    TenantRepository,
};
use bursar::{Store, TenantScope};
use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use sqlx::{AssertSqlSafe, Connection};

/// The tenant's time zone: windows are computed in it.
pub const TIME_ZONE: &str = "Europe/Berlin";
/// Every budget's limit: large enough never to run out during a run.
pub const LIMIT: i64 = 1_000_000_000_000;
/// What each authorization holds, USD.
pub const AMOUNT: i64 = 3;
/// The merchant of every purchase.
pub const MERCHANT: &str = "Tools Inc";

/// The instant every call happens at (the store's clock is fixed).
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 15, 12, 0, 0)
        .single()
        .expect("a valid instant")
}

/// Where a fixture's database lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite::memory:`.
    SqliteMemory,
    /// A SQLite file in WAL mode, in a temporary directory.
    SqliteFile,
    /// A fresh schema in `BURSAR_TEST_POSTGRES_URL`'s database.
    Postgres,
}

impl Backend {
    /// The name printed in the results.
    pub fn name(self) -> &'static str {
        match self {
            Backend::SqliteMemory => "sqlite-memory",
            Backend::SqliteFile => "sqlite-file",
            Backend::Postgres => "postgres",
        }
    }
}

/// `BURSAR_TEST_POSTGRES_URL`, when set and not blank.
pub fn postgres_url() -> Option<String> {
    std::env::var("BURSAR_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
}

async fn admin(url: &str, statement: &str) {
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .expect("connect to PostgreSQL");
    sqlx::raw_sql(AssertSqlSafe(statement.to_owned()))
        .execute(&mut conn)
        .await
        .expect("an administrative statement");
    conn.close().await.ok();
}

/// A fresh, migrated database and what it takes to throw it away.
pub struct Database {
    /// The store on it.
    pub store: Store,
    /// The URL the store was opened with.
    pub url: String,
    /// The SQLite file, for a file database.
    pub file: Option<std::path::PathBuf>,
    _dir: Option<tempfile::TempDir>,
    pg_schema: Option<(String, String)>,
}

impl Database {
    /// Opens a fresh database on `backend` (`None` for PostgreSQL without
    /// `BURSAR_TEST_POSTGRES_URL`).
    pub async fn open(backend: Backend) -> Option<Self> {
        let (url, dir, file, pg_schema) = match backend {
            Backend::SqliteMemory => ("sqlite::memory:".to_owned(), None, None, None),
            Backend::SqliteFile => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let file = dir.path().join("bench.db");
                let url = format!("sqlite://{}?mode=rwc", file.display());
                (url, Some(dir), Some(file), None)
            }
            Backend::Postgres => {
                let base = postgres_url()?;
                let name = format!("bench_{}", uuid::Uuid::now_v7().simple());
                admin(&base, &format!("CREATE SCHEMA {name}")).await;
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{sep}options=-c%20search_path%3D{name}");
                (url, None, None, Some((base, name)))
            }
        };
        let store = Store::builder(&url)
            .clock(Arc::new(ManualClock::new(now())))
            .connect()
            .await
            .expect("a migrated store");
        Some(Self {
            store,
            url,
            file,
            _dir: dir,
            pg_schema,
        })
    }

    /// A store on an existing SQLite file (migrations are idempotent).
    pub async fn reopen_file(path: &std::path::Path) -> Self {
        let url = format!("sqlite://{}", path.display());
        let store = Store::builder(&url)
            .clock(Arc::new(ManualClock::new(now())))
            .connect()
            .await
            .expect("a store on the file");
        Self {
            store,
            url,
            file: Some(path.to_owned()),
            _dir: None,
            pg_schema: None,
        }
    }

    /// Closes the pool and drops a PostgreSQL schema.
    pub async fn close(self) {
        self.store.close().await.expect("close the pool");
        if let Some((base, name)) = self.pg_schema {
            admin(&base, &format!("DROP SCHEMA {name} CASCADE")).await;
        }
    }
}

/// One tenant ready to authorize: an agent in a team, an agent daily, a team
/// monthly and a tenant monthly budget, and controls that approve its
/// purchases up to 200 USD.
#[derive(Clone)]
pub struct Tenant {
    /// The tenant's scope.
    pub scope: TenantScope,
    /// Its agent.
    pub agent: AgentId,
    /// The agent's team.
    pub team: TeamId,
}

impl Tenant {
    /// Creates the tenant in `store`.
    pub async fn create(store: &Store) -> Self {
        let limit = Decimal::from(LIMIT);
        let slug = format!("bench-{}", uuid::Uuid::now_v7().simple());
        let t = store
            .tenants()
            .create(NewTenant::new("Bench", slug).timezone(TIME_ZONE))
            .await
            .expect("a tenant");
        let scope = store.tenant(t.id);
        let team = scope
            .teams()
            .create(NewGroup::new("Platform", "platform"))
            .await
            .expect("a team")
            .id;
        let agent = scope
            .agents()
            .create(NewAgent::new("research-bot").team(team))
            .await
            .expect("an agent")
            .id;
        scope
            .apply_controls(
                &SpendingControls::new(Currency::USD)
                    .agent(agent)
                    .per_transaction_limit(Decimal::from(200))
                    .daily_limit(limit)
                    .build()
                    .expect("controls"),
            )
            .await
            .expect("controls applied");
        let budgets = scope.budgets();
        budgets
            .create(NewBudget::team(team).monthly(limit, "USD"))
            .await
            .expect("a team budget");
        budgets
            .create(NewBudget::tenant().monthly(limit, "USD"))
            .await
            .expect("a tenant budget");
        Self { scope, agent, team }
    }

    /// The same tenant seen through another store on its database.
    pub fn attach(store: &Store, tenant: &Tenant) -> Self {
        Self {
            scope: store.tenant(tenant.id()),
            agent: tenant.agent,
            team: tenant.team,
        }
    }

    /// The tenant's id.
    pub fn id(&self) -> TenantId {
        self.scope.tenant_id()
    }

    /// What the raw baselines need to authorize for this tenant's agent.
    pub fn target(&self) -> crate::minimal::Target {
        crate::minimal::Target {
            tenant: self.id().as_uuid(),
            agent: self.agent.as_uuid(),
            team: self.team.as_uuid(),
            now: now(),
            amount: bursar::money::Amount::new(Decimal::from(AMOUNT)).expect("an amount"),
            merchant: MERCHANT.to_owned(),
        }
    }

    /// Every window of the tenant matches its ledger entries and fits its
    /// limit, and its audit chain verifies; panics naming `what` otherwise.
    pub async fn assert_consistent(&self, what: &str) {
        use bursar::audit::AuditLogRepository as _;
        use bursar::store::ReservationRepository as _;
        let report = self
            .scope
            .reservations()
            .reconcile()
            .await
            .expect("reconcile");
        assert!(report.is_clean(), "{what}: {report:#?}");
        let chain = self.scope.audit_log().verify().await.expect("verify");
        assert_eq!(chain.first_broken_seq, None, "{what}: {chain:?}");
    }

    /// One approved purchase through bursar.
    pub async fn authorize(&self) {
        let request = Request::purchase(self.agent, Decimal::from(AMOUNT), Currency::USD, MERCHANT);
        let outcome = self.scope.authorize(request).await.expect("authorize");
        assert!(outcome.is_approved(), "{:?}", outcome.reasons);
    }
}
