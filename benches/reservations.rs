//! Reservations per second: bursar's reserve + capture beside a raw-SQL
//! baseline that issues the same statements, hand-written, through the same
//! sqlx pool.
//!
//! ```text
//! cargo bench --bench reservations
//! BURSAR_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/bursar_dev \
//!     cargo bench --bench reservations
//! # bursar naming each transaction's tenant to row-level security:
//! BURSAR_BENCH_ROW_LEVEL_SECURITY=enforced BURSAR_TEST_POSTGRES_URL=… \
//!     cargo bench --bench reservations -- postgres
//! ```
//!
//! Every measured iteration is one reservation of 2.50 USD followed by its
//! capture of 2.00 USD (the rest is released), on a fresh, migrated database
//! per benchmark:
//!
//! * backends: in-memory SQLite, file SQLite (WAL) and, when
//!   `BURSAR_TEST_POSTGRES_URL` is set, PostgreSQL (a fresh schema, dropped at
//!   the end);
//! * shapes: one hot tenant budget, and a three-level hierarchy (agent daily,
//!   team monthly, tenant monthly);
//! * clients: one; on PostgreSQL also eight concurrent clients on the same hot
//!   budgets.
//!
//! The `raw` baseline (module [`raw`]) runs the same protocol statement for
//! statement with `sqlx::query`, and no bursar code but the money text encoding.
//! After each benchmark both tenants are reconciled (every window's balance must
//! equal its ledger sums and fit its limit), so the baseline is checked to do
//! the same bookkeeping.
//!
//! Criterion measures each engine on its own. Then, because other work on the
//! machine can change its speed between two criterion runs, the two engines
//! are also run in alternating batches (24 rounds of about 0.15 s each) and
//! compared on their medians; one line per pair is printed at once and all of
//! them again at the end:
//!
//! ```text
//! reservations sqlite-memory/hierarchy: bursar 641/s (1561 µs) vs raw 971/s (1030 µs) = 66.0%
//! ```

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bursar::Store;
use bursar::budget::Principal;
use bursar::clock::ManualClock;
use bursar::money::{Amount, Money};
use bursar::store::{
    AgentRepository, BudgetRepository, NewAgent, NewBudget, NewGroup, NewTenant,
    ReservationRepository, ReserveRequest, RowLevelSecurity, TeamRepository, TenantRepository,
    TenantScope,
};
use chrono::{DateTime, TimeZone, Utc};
use criterion::{Criterion, Throughput};
use rust_decimal::Decimal;
use sqlx::{AssertSqlSafe, Connection};

#[path = "common/periods.rs"]
mod periods;
#[path = "common/sql_text.rs"]
mod sql_text;

/// Clients of the concurrent variant.
const CLIENTS: usize = 8;
/// The tenant's time zone: windows are computed in it.
const TIME_ZONE: &str = "Europe/Berlin";
/// Every limit: large enough never to run out during a run.
const LIMIT: &str = "1000000000000000";
const HOLD: &str = "2.50";
const CAPTURE: &str = "2.00";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 15, 12, 0, 0)
        .single()
        .expect("a valid instant")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    SqliteMemory,
    SqliteFile,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::SqliteMemory => "sqlite-memory",
            Backend::SqliteFile => "sqlite-file",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// One tenant monthly budget.
    OneBudget,
    /// Agent daily + team monthly + tenant monthly.
    Hierarchy,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::OneBudget => "one-budget",
            Shape::Hierarchy => "hierarchy",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Engine {
    Bursar,
    Raw,
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::Bursar => "bursar",
            Engine::Raw => "raw",
        }
    }
}

fn postgres_url() -> Option<String> {
    std::env::var("BURSAR_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
}

/// `BURSAR_BENCH_ROW_LEVEL_SECURITY=enforced` opens bursar's stores with
/// [`RowLevelSecurity::Enforced`]: on PostgreSQL each transaction then also
/// names its tenant (the raw baseline does not). Otherwise the default.
fn row_level_security() -> RowLevelSecurity {
    match std::env::var("BURSAR_BENCH_ROW_LEVEL_SECURITY").as_deref() {
        Ok("enforced") => RowLevelSecurity::Enforced,
        _ => RowLevelSecurity::Bypassed,
    }
}

/// A fresh, migrated database and what it takes to throw it away.
struct Database {
    store: Store,
    _dir: Option<tempfile::TempDir>,
    pg_schema: Option<(String, String)>,
}

impl Database {
    async fn open(backend: Backend) -> Self {
        let clock = Arc::new(ManualClock::new(now()));
        let (url, dir, pg_schema) = match backend {
            Backend::SqliteMemory => ("sqlite::memory:".to_owned(), None, None),
            Backend::SqliteFile => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("bench.db").display()
                );
                (url, Some(dir), None)
            }
            Backend::Postgres => {
                let base = postgres_url().expect("BURSAR_TEST_POSTGRES_URL");
                let name = format!("bench_{}", uuid::Uuid::now_v7().simple());
                admin(&base, &format!("CREATE SCHEMA {name}")).await;
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{sep}options=-c%20search_path%3D{name}");
                (url, None, Some((base, name)))
            }
        };
        let store = Store::builder(&url)
            .clock(clock)
            .row_level_security(row_level_security())
            .connect()
            .await
            .expect("a migrated store");
        Self {
            store,
            _dir: dir,
            pg_schema,
        }
    }

    async fn close(self) {
        self.store.close().await.expect("close the pool");
        if let Some((base, name)) = self.pg_schema {
            admin(&base, &format!("DROP SCHEMA {name} CASCADE")).await;
        }
    }
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

/// One tenant with an agent in a team and the budgets of a shape.
#[derive(Clone)]
struct Tenant {
    scope: TenantScope,
    principal: Principal,
}

async fn tenant(store: &Store, shape: Shape) -> Tenant {
    let limit: Decimal = LIMIT.parse().expect("a decimal");
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
    let budgets = scope.budgets();
    if shape == Shape::Hierarchy {
        budgets
            .create(NewBudget::agent(agent).daily(limit, "USD"))
            .await
            .expect("an agent budget");
        budgets
            .create(NewBudget::team(team).monthly(limit, "USD"))
            .await
            .expect("a team budget");
    }
    budgets
        .create(NewBudget::tenant().monthly(limit, "USD"))
        .await
        .expect("a tenant budget");
    Tenant {
        scope,
        principal: Principal::agent(agent).team(team),
    }
}

fn usd(s: &str) -> Money {
    Money::parse(s, "USD").expect("an amount")
}

/// One reservation and its capture through bursar.
async fn bursar_pair(t: &Tenant) {
    let reservations = t.scope.reservations();
    let outcome = reservations
        .reserve(
            ReserveRequest::new(usd(HOLD), now() + chrono::Duration::minutes(15))
                .principal(t.principal),
        )
        .await
        .expect("reserve");
    let id = outcome.reservation().expect("the amount fits").id;
    reservations
        .capture(id, usd(CAPTURE))
        .await
        .expect("capture");
}

/// What one benchmark runs on: a database, the tenant, and the raw baseline's
/// handle on the same pool.
struct Fixture {
    db: Database,
    tenant: Tenant,
    raw: raw::Raw,
}

impl Fixture {
    async fn new(backend: Backend, shape: Shape) -> Self {
        let db = Database::open(backend).await;
        let tenant = tenant(&db.store, shape).await;
        let raw = raw::Raw::new(
            &db.store,
            raw::Target {
                tenant: tenant.scope.tenant_id().as_uuid(),
                agent: tenant.principal.agent_id.as_uuid(),
                team: tenant.principal.team_id.map(|t| t.as_uuid()),
                now: now(),
                hold: Amount::new(usd(HOLD).amount()).expect("an amount"),
                capture: Amount::new(usd(CAPTURE).amount()).expect("an amount"),
            },
        );
        Self { db, tenant, raw }
    }

    async fn pair(&self, engine: Engine) {
        match engine {
            Engine::Bursar => bursar_pair(&self.tenant).await,
            Engine::Raw => self.raw.pair().await.expect("raw reserve + capture"),
        }
    }

    /// Runs `iters` pairs over `clients` concurrent clients and returns the
    /// wall time.
    async fn run(self: &Arc<Self>, engine: Engine, clients: usize, iters: u64) -> Duration {
        let start = Instant::now();
        if clients <= 1 {
            for _ in 0..iters {
                self.pair(engine).await;
            }
        } else {
            let clients = clients as u64;
            let mut tasks = Vec::new();
            for c in 0..clients {
                let share = iters / clients + u64::from(c < iters % clients);
                let me = Arc::clone(self);
                tasks.push(tokio::spawn(async move {
                    for _ in 0..share {
                        me.pair(engine).await;
                    }
                }));
            }
            for task in tasks {
                task.await.expect("a client task");
            }
        }
        start.elapsed()
    }

    /// Every window of the tenant matches its ledger and fits its limit.
    async fn assert_reconciled(&self, what: &str) {
        let report = self
            .tenant
            .scope
            .reservations()
            .reconcile()
            .await
            .expect("reconcile");
        assert!(report.is_clean(), "{what}: {report:#?}");
        println!(
            "{what}: {} windows reconciled against {} ledger entries",
            report.windows, report.entries
        );
    }
}

/// Interleaved rounds of the comparison.
const ROUNDS: usize = 24;
/// Wall time each engine gets per round.
const ROUND_TIME: Duration = Duration::from_millis(150);

/// Medians over the interleaved rounds, in nanoseconds per reserve + capture.
struct Comparison {
    label: String,
    bursar_ns: f64,
    raw_ns: f64,
}

impl Comparison {
    fn line(&self) -> String {
        format!(
            "reservations {}: bursar {:.0}/s ({:.0} µs) vs raw {:.0}/s ({:.0} µs) = {:.1}%",
            self.label,
            1e9 / self.bursar_ns,
            self.bursar_ns / 1e3,
            1e9 / self.raw_ns,
            self.raw_ns / 1e3,
            100.0 * self.raw_ns / self.bursar_ns
        )
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        xs[n / 2]
    } else {
        f64::midpoint(xs[n / 2 - 1], xs[n / 2])
    }
}

/// Runs the two engines in alternating batches (bursar then raw, then raw then
/// bursar, …) so that a change in the machine's load during the run weighs on
/// both alike, and returns the median time per pair of each.
async fn interleaved(fixtures: [&Arc<Fixture>; 2], clients: usize, quick: bool) -> (f64, f64) {
    let engines = [Engine::Bursar, Engine::Raw];
    let (rounds, mut batch) = if quick { (1, [1, 1]) } else { (ROUNDS, [0, 0]) };
    if !quick {
        // Calibrate: a batch takes about ROUND_TIME.
        for i in 0..2 {
            let probe = 4 * clients.max(1) as u64;
            let took = fixtures[i].run(engines[i], clients, probe).await;
            let per = took.as_secs_f64() / probe as f64;
            batch[i] = ((ROUND_TIME.as_secs_f64() / per) as u64).max(probe);
        }
    }
    let mut per_pair = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let took = fixtures[i].run(engines[i], clients, batch[i]).await;
            per_pair[i].push(took.as_nanos() as f64 / batch[i] as f64);
        }
    }
    let [b, r] = per_pair;
    (median(b), median(r))
}

fn bench_pair(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    backend: Backend,
    shape: Shape,
    clients: usize,
    quick: bool,
) -> Option<Comparison> {
    let group_name = group_name(backend, shape, clients);
    let mut group = c.benchmark_group(&group_name);
    group.throughput(Throughput::Elements(1));
    // Created on first use, so that benchmarks a filter skips open no
    // database.
    let fixtures: [OnceLock<Arc<Fixture>>; 2] = [OnceLock::new(), OnceLock::new()];
    for (engine, fixture) in [Engine::Bursar, Engine::Raw].into_iter().zip(&fixtures) {
        group.bench_function(engine.name(), |b| {
            let fixture =
                fixture.get_or_init(|| Arc::new(rt.block_on(Fixture::new(backend, shape))));
            b.iter_custom(|iters| rt.block_on(fixture.run(engine, clients, iters)));
        });
    }
    group.finish();
    let [bursar, raw] = fixtures.map(OnceLock::into_inner);
    let comparison = match (&bursar, &raw) {
        (Some(b), Some(r)) => {
            let (bursar_ns, raw_ns) = rt.block_on(interleaved([b, r], clients, quick));
            let label = if clients > 1 {
                format!("{}-{clients}-clients/{}", backend.name(), shape.name())
            } else {
                format!("{}/{}", backend.name(), shape.name())
            };
            let comparison = Comparison {
                label,
                bursar_ns,
                raw_ns,
            };
            println!("{}", comparison.line());
            Some(comparison)
        }
        _ => None,
    };
    for (engine, fixture) in [Engine::Bursar, Engine::Raw].into_iter().zip([bursar, raw]) {
        let Some(fixture) = fixture else { continue };
        let what = format!("{group_name}/{}", engine.name());
        rt.block_on(async {
            fixture.assert_reconciled(&what).await;
            if let Ok(fixture) = Arc::try_unwrap(fixture) {
                let Fixture { db, tenant, raw } = fixture;
                drop((tenant, raw));
                db.close().await;
            }
        });
    }
    comparison
}

fn group_name(backend: Backend, shape: Shape, clients: usize) -> String {
    if clients > 1 {
        format!(
            "reservations-{}-{clients}-clients-{}",
            backend.name(),
            shape.name()
        )
    } else {
        format!("reservations-{}-{}", backend.name(), shape.name())
    }
}

fn environment(rt: &tokio::runtime::Runtime) {
    rt.block_on(async {
        let db = Database::open(Backend::SqliteMemory).await;
        let pool = db.store.connection().get_sqlite_connection_pool();
        let version: String = sqlx::query_scalar("SELECT sqlite_version()")
            .fetch_one(pool)
            .await
            .expect("the SQLite version");
        println!("SQLite {version}");
        db.close().await;
        if let Some(url) = postgres_url() {
            let mut conn = sqlx::PgConnection::connect(&url)
                .await
                .expect("connect to PostgreSQL");
            let version: String = sqlx::query_scalar("SHOW server_version")
                .fetch_one(&mut conn)
                .await
                .expect("the PostgreSQL version");
            println!("PostgreSQL {version}");
            conn.close().await.ok();
        } else {
            println!("PostgreSQL skipped: BURSAR_TEST_POSTGRES_URL is not set");
        }
    });
}

fn main() {
    let out = std::env::var_os("CRITERION_HOME").map_or_else(
        || {
            Path::new(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
                .join("criterion")
        },
        PathBuf::from,
    );
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .output_directory(&out)
        .configure_from_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    environment(&rt);

    let mut backends = vec![Backend::SqliteMemory, Backend::SqliteFile];
    if postgres_url().is_some() {
        backends.push(Backend::Postgres);
    }
    let mut runs = Vec::new();
    for &backend in &backends {
        for shape in [Shape::OneBudget, Shape::Hierarchy] {
            runs.push((backend, shape, 1));
        }
    }
    if backends.contains(&Backend::Postgres) {
        for shape in [Shape::OneBudget, Shape::Hierarchy] {
            runs.push((Backend::Postgres, shape, CLIENTS));
        }
    }
    // `--test` runs every benchmark once: keep the comparison to one pair too.
    let quick = std::env::args().any(|a| a == "--test");
    let mut comparisons = Vec::new();
    for &(backend, shape, clients) in &runs {
        comparisons.extend(bench_pair(&mut c, &rt, backend, shape, clients, quick));
    }
    c.final_summary();
    println!();
    println!("Interleaved comparison, medians of {ROUNDS} rounds per engine:");
    for comparison in &comparisons {
        println!("{}", comparison.line());
    }
}

/// The baseline: the statements bursar's reserve and capture issue, in the
/// same order and with the same rows, hand-written with `sqlx::query` on the
/// store's own sqlx pool. It shares nothing with bursar but the schema and the
/// fixed-width money text (`Amount::to_db_string` / `from_db_str`).
mod raw {
    use super::periods::period;
    use super::sql_text::{self, leak};
    use bursar::Store;
    use bursar::money::Amount;
    use chrono::{DateTime, Utc};
    use chrono_tz::Tz;
    use sqlx::Row;
    use uuid::Uuid;

    pub type Error = Box<dyn std::error::Error + Send + Sync>;

    /// Whom the baseline reserves for, and the amounts.
    pub struct Target {
        pub tenant: Uuid,
        pub agent: Uuid,
        pub team: Option<Uuid>,
        pub now: DateTime<Utc>,
        pub hold: Amount,
        pub capture: Amount,
    }

    /// The most budgets one request may meet (agent, team, project, run,
    /// tenant): the statements with one placeholder group per window are
    /// prepared for each count up to this.
    const MAX_WINDOWS: usize = 5;

    /// Every statement, with `$n` placeholders (SQLite reads `$n` as the
    /// n-th parameter too).
    pub struct Sql {
        begin: &'static str,
        insert_reservation: &'static str,
        tenant_timezone: &'static str,
        applicable_budgets: &'static str,
        insert_window: &'static str,
        lock_windows_by_budget: Vec<&'static str>,
        guarded_update_fit: &'static str,
        guarded_update: &'static str,
        insert_lines: Vec<&'static str>,
        insert_ledger: Vec<&'static str>,
        lines_of: &'static str,
        lock_reservation: &'static str,
        lock_windows_by_id: Vec<&'static str>,
        capture_lines: &'static str,
        capture_reservation: &'static str,
    }

    const RESERVATION_COLUMNS: &str = "id, tenant_id, agent_id, run_id, purchase_intent_id, \
        idempotency_key, currency, amount, captured_amount, refunded_amount, status, \
        expires_at, captured_at, released_at, created_at, updated_at";
    const LINE_COLUMNS: &str = "id, tenant_id, reservation_id, budget_id, window_id, amount, \
        captured_amount, refunded_amount, created_at";
    const LEDGER_COLUMNS: &str = "id, tenant_id, budget_id, window_id, reservation_id, \
        entry_type, bucket, direction, amount, currency, reference, occurred_at, created_at";
    const WINDOW_COLUMNS: &str = "id, budget_id, limit_amount, spent, reserved";

    impl Sql {
        fn new(postgres: bool) -> Self {
            let lock = if postgres { " FOR UPDATE" } else { "" };
            let by_budget = |n: usize| {
                let groups: Vec<String> = (0..n)
                    .map(|i| {
                        format!(
                            "(budget_id = ${} AND period_start = ${})",
                            2 + 2 * i,
                            3 + 2 * i
                        )
                    })
                    .collect();
                leak(format!(
                    "SELECT {WINDOW_COLUMNS} FROM budget_windows WHERE tenant_id = $1 AND ({}) \
                     ORDER BY id{lock}",
                    groups.join(" OR ")
                ))
            };
            let by_id = |n: usize| {
                let ids: Vec<String> = (0..n).map(|i| format!("${}", 2 + i)).collect();
                leak(format!(
                    "SELECT {WINDOW_COLUMNS} FROM budget_windows WHERE tenant_id = $1 AND id IN ({}) \
                     ORDER BY id{lock}",
                    ids.join(", ")
                ))
            };
            let counts = 1..=MAX_WINDOWS;
            Self {
                begin: if postgres { "BEGIN" } else { "BEGIN IMMEDIATE" },
                insert_reservation: leak(format!(
                    "INSERT INTO reservations (id, tenant_id, agent_id, purchase_intent_id, \
                     idempotency_key, currency, amount, captured_amount, refunded_amount, status, \
                     expires_at, captured_at, released_at, created_at, updated_at) VALUES {} \
                     RETURNING {RESERVATION_COLUMNS}",
                    sql_text::values('$', 15, 1)
                )),
                tenant_timezone: "SELECT timezone FROM tenants WHERE id = $1 LIMIT 1",
                applicable_budgets: "SELECT id, scope_kind, scope_id, period, limit_amount \
                    FROM budgets WHERE tenant_id = $1 AND is_active = $2 AND currency = $3 \
                    AND (scope_kind = $4 OR (scope_kind = $5 AND scope_id = $6) \
                    OR (scope_kind = $7 AND scope_id = $8)) ORDER BY id",
                insert_window: "INSERT INTO budget_windows (id, tenant_id, budget_id, \
                    period_start, period_end, limit_amount, spent, reserved, created_at, \
                    updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                    ON CONFLICT (tenant_id, budget_id, period_start) DO NOTHING",
                lock_windows_by_budget: counts.clone().map(by_budget).collect(),
                guarded_update_fit: "UPDATE budget_windows SET spent = $1, reserved = $2, \
                    updated_at = $3 WHERE tenant_id = $4 AND id = $5 AND spent = $6 \
                    AND reserved = $7 AND limit_amount >= $8",
                guarded_update: "UPDATE budget_windows SET spent = $1, reserved = $2, \
                    updated_at = $3 WHERE tenant_id = $4 AND id = $5 AND spent = $6 \
                    AND reserved = $7",
                insert_lines: counts
                    .clone()
                    .map(|n| {
                        leak(format!(
                            "INSERT INTO reservation_lines ({LINE_COLUMNS}) VALUES {}",
                            sql_text::values('$', 9, n)
                        ))
                    })
                    .collect(),
                // A reserve writes one entry per window, a capture two.
                insert_ledger: (1..=2 * MAX_WINDOWS)
                    .map(|n| {
                        leak(format!(
                            "INSERT INTO ledger_entries ({LEDGER_COLUMNS}) VALUES {}",
                            sql_text::values('$', 13, n)
                        ))
                    })
                    .collect(),
                lines_of: leak(format!(
                    "SELECT {LINE_COLUMNS} FROM reservation_lines WHERE tenant_id = $1 \
                     AND reservation_id = $2 ORDER BY window_id"
                )),
                lock_reservation: leak(format!(
                    "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE tenant_id = $1 \
                     AND id = $2 LIMIT 1{lock}"
                )),
                lock_windows_by_id: counts.map(by_id).collect(),
                capture_lines: "UPDATE reservation_lines SET captured_amount = $1 \
                    WHERE tenant_id = $2 AND reservation_id = $3",
                capture_reservation: leak(format!(
                    "UPDATE reservations SET captured_amount = $1, status = $2, captured_at = $3, \
                     updated_at = $4 WHERE id = $5 RETURNING {RESERVATION_COLUMNS}"
                )),
            }
        }
    }

    /// A stored window, as read under its lock.
    struct Window {
        id: Uuid,
        budget_id: Uuid,
        limit: Amount,
        spent: Amount,
        reserved: Amount,
    }

    /// A reservation line, as read back.
    #[allow(dead_code)]
    struct Line {
        id: Uuid,
        tenant_id: Uuid,
        reservation_id: Uuid,
        budget_id: Uuid,
        window_id: Uuid,
        amount: Amount,
        captured_amount: Amount,
        refunded_amount: Amount,
        created_at: DateTime<Utc>,
    }

    /// A ledger row to insert.
    struct Entry {
        window: usize,
        entry_type: &'static str,
        bucket: &'static str,
        direction: &'static str,
        amount: Amount,
    }

    fn amount(s: &str) -> Result<Amount, Error> {
        Ok(Amount::from_db_str(s)?)
    }

    macro_rules! driver {
        ($module:ident, $db:ty) => {
            pub mod $module {
                use super::*;

                type Tx = sqlx::Transaction<'static, $db>;

                async fn begin(pool: &sqlx::Pool<$db>, sql: &Sql) -> Result<Tx, Error> {
                    Ok(pool.begin_with(sql.begin).await?)
                }

                fn line(row: &<$db as sqlx::Database>::Row) -> Result<Line, Error> {
                    Ok(Line {
                        id: row.try_get(0)?,
                        tenant_id: row.try_get(1)?,
                        reservation_id: row.try_get(2)?,
                        budget_id: row.try_get(3)?,
                        window_id: row.try_get(4)?,
                        amount: amount(row.try_get(5)?)?,
                        captured_amount: amount(row.try_get(6)?)?,
                        refunded_amount: amount(row.try_get(7)?)?,
                        created_at: row.try_get(8)?,
                    })
                }

                fn window(row: &<$db as sqlx::Database>::Row) -> Result<Window, Error> {
                    Ok(Window {
                        id: row.try_get(0)?,
                        budget_id: row.try_get(1)?,
                        limit: amount(row.try_get(2)?)?,
                        spent: amount(row.try_get(3)?)?,
                        reserved: amount(row.try_get(4)?)?,
                    })
                }

                async fn lines_of(
                    tx: &mut Tx,
                    sql: &Sql,
                    t: &Target,
                    id: Uuid,
                ) -> Result<Vec<Line>, Error> {
                    let rows = sqlx::query(sql.lines_of)
                        .bind(t.tenant)
                        .bind(id)
                        .fetch_all(&mut **tx)
                        .await?;
                    rows.iter().map(line).collect()
                }

                async fn insert_ledger(
                    tx: &mut Tx,
                    sql: &Sql,
                    t: &Target,
                    reservation: Uuid,
                    windows: &[Window],
                    entries: &[Entry],
                ) -> Result<(), Error> {
                    let statement = sql
                        .insert_ledger
                        .get(entries.len() - 1)
                        .ok_or("too many entries")?;
                    let mut q = sqlx::query(*statement);
                    for e in entries {
                        let w = &windows[e.window];
                        q = q
                            .bind(Uuid::now_v7())
                            .bind(t.tenant)
                            .bind(w.budget_id)
                            .bind(w.id)
                            .bind(Some(reservation))
                            .bind(e.entry_type)
                            .bind(e.bucket)
                            .bind(e.direction)
                            .bind(e.amount.to_db_string())
                            .bind("USD")
                            .bind(None::<String>)
                            .bind(t.now)
                            .bind(t.now);
                    }
                    q.execute(&mut **tx).await?;
                    Ok(())
                }

                /// Holds `t.hold` on every applicable window; returns the
                /// reservation id.
                async fn reserve(
                    pool: &sqlx::Pool<$db>,
                    sql: &Sql,
                    t: &Target,
                ) -> Result<Uuid, Error> {
                    let mut tx = begin(pool, sql).await?;
                    let zero = Amount::ZERO.to_db_string();
                    // The reservation row first, read back.
                    let id = Uuid::now_v7();
                    let row = sqlx::query(sql.insert_reservation)
                        .bind(id)
                        .bind(t.tenant)
                        .bind(Some(t.agent))
                        .bind(None::<Uuid>)
                        .bind(None::<String>)
                        .bind("USD")
                        .bind(t.hold.to_db_string())
                        .bind(zero.clone())
                        .bind(zero.clone())
                        .bind("held")
                        .bind(t.now + chrono::Duration::minutes(15))
                        .bind(None::<DateTime<Utc>>)
                        .bind(None::<DateTime<Utc>>)
                        .bind(t.now)
                        .bind(t.now)
                        .fetch_one(&mut *tx)
                        .await?;
                    let stored: Uuid = row.try_get(0)?;
                    let status: String = row.try_get(10)?;
                    if stored != id || status != "held" {
                        return Err("the reservation did not read back".into());
                    }
                    // The tenant's time zone.
                    let zone: String = sqlx::query_scalar(sql.tenant_timezone)
                        .bind(t.tenant)
                        .fetch_one(&mut *tx)
                        .await?;
                    let tz: Tz = zone.parse()?;
                    // The applicable budgets, by id.
                    let budgets = sqlx::query(sql.applicable_budgets)
                        .bind(t.tenant)
                        .bind(true)
                        .bind("USD")
                        .bind("tenant")
                        .bind("agent")
                        .bind(t.agent)
                        .bind("team")
                        .bind(t.team)
                        .fetch_all(&mut *tx)
                        .await?;
                    // Each budget's current window.
                    let mut wanted = Vec::with_capacity(budgets.len());
                    for b in &budgets {
                        let budget: Uuid = b.try_get(0)?;
                        let every: String = b.try_get(3)?;
                        let limit: String = b.try_get(4)?;
                        let (start, end) = period(&every, tz, t.now)?;
                        wanted.push((budget, start, end, limit));
                    }
                    // Lock them in ascending id order; create the missing ones
                    // (insert-if-absent) and lock again only when one is absent.
                    let statement = sql
                        .lock_windows_by_budget
                        .get(wanted.len().wrapping_sub(1))
                        .ok_or("no applicable budget")?;
                    let mut rows = Vec::new();
                    for attempt in 0..2 {
                        let mut q = sqlx::query(*statement).bind(t.tenant);
                        for (budget, start, _, _) in &wanted {
                            q = q.bind(*budget).bind(*start);
                        }
                        rows = q.fetch_all(&mut *tx).await?;
                        if rows.len() == wanted.len() || attempt == 1 {
                            break;
                        }
                        for (budget, start, end, limit) in &wanted {
                            sqlx::query(sql.insert_window)
                                .bind(Uuid::now_v7())
                                .bind(t.tenant)
                                .bind(*budget)
                                .bind(*start)
                                .bind(Some(*end))
                                .bind(limit.clone())
                                .bind(zero.clone())
                                .bind(zero.clone())
                                .bind(t.now)
                                .bind(t.now)
                                .execute(&mut *tx)
                                .await?;
                        }
                    }
                    let windows = rows.iter().map(window).collect::<Result<Vec<_>, Error>>()?;
                    // All or nothing: every window must fit.
                    for w in &windows {
                        if w.spent.checked_add(w.reserved)?.checked_add(t.hold)? > w.limit {
                            tx.rollback().await?;
                            return Err("a budget ran out".into());
                        }
                    }
                    // Guarded updates, computed here under the locks.
                    for w in &windows {
                        let reserved = w.reserved.checked_add(t.hold)?;
                        let total = w.spent.checked_add(reserved)?;
                        let done = sqlx::query(sql.guarded_update_fit)
                            .bind(w.spent.to_db_string())
                            .bind(reserved.to_db_string())
                            .bind(t.now)
                            .bind(t.tenant)
                            .bind(w.id)
                            .bind(w.spent.to_db_string())
                            .bind(w.reserved.to_db_string())
                            .bind(total.to_db_string())
                            .execute(&mut *tx)
                            .await?;
                        if done.rows_affected() != 1 {
                            return Err("a window moved under its lock".into());
                        }
                    }
                    // One line and one ledger entry per window.
                    let statement = sql
                        .insert_lines
                        .get(windows.len() - 1)
                        .ok_or("too many windows")?;
                    let mut q = sqlx::query(*statement);
                    for w in &windows {
                        q = q
                            .bind(Uuid::now_v7())
                            .bind(t.tenant)
                            .bind(id)
                            .bind(w.budget_id)
                            .bind(w.id)
                            .bind(t.hold.to_db_string())
                            .bind(zero.clone())
                            .bind(zero.clone())
                            .bind(t.now);
                    }
                    q.execute(&mut *tx).await?;
                    let entries: Vec<Entry> = (0..windows.len())
                        .map(|i| Entry {
                            window: i,
                            entry_type: "reserve",
                            bucket: "reserved",
                            direction: "debit",
                            amount: t.hold,
                        })
                        .collect();
                    insert_ledger(&mut tx, sql, t, id, &windows, &entries).await?;
                    // bursar returns the lines it inserted without reading
                    // them back, and so does the baseline.
                    tx.commit().await?;
                    Ok(id)
                }

                /// Captures `t.capture` of a held reservation and releases the rest.
                async fn capture(
                    pool: &sqlx::Pool<$db>,
                    sql: &Sql,
                    t: &Target,
                    id: Uuid,
                ) -> Result<(), Error> {
                    let mut tx = begin(pool, sql).await?;
                    let row = sqlx::query(sql.lock_reservation)
                        .bind(t.tenant)
                        .bind(id)
                        .fetch_one(&mut *tx)
                        .await?;
                    let status: String = row.try_get(10)?;
                    let currency: String = row.try_get(6)?;
                    let held = amount(row.try_get(7)?)?;
                    if status != "held" || currency != "USD" || t.capture > held {
                        return Err(format!("cannot capture a {status} reservation").into());
                    }
                    let lines = lines_of(&mut tx, sql, t, id).await?;
                    let statement = sql
                        .lock_windows_by_id
                        .get(lines.len().wrapping_sub(1))
                        .ok_or("no lines")?;
                    let mut q = sqlx::query(*statement).bind(t.tenant);
                    for l in &lines {
                        q = q.bind(l.window_id);
                    }
                    let windows = q
                        .fetch_all(&mut *tx)
                        .await?
                        .iter()
                        .map(window)
                        .collect::<Result<Vec<_>, Error>>()?;
                    let mut entries = Vec::with_capacity(2 * windows.len());
                    for (i, w) in windows.iter().enumerate() {
                        let line_held = lines
                            .iter()
                            .find(|l| l.window_id == w.id)
                            .map_or(held, |l| l.amount);
                        let reserved = w.reserved.saturating_sub(line_held);
                        let spent = w.spent.checked_add(t.capture)?;
                        let done = sqlx::query(sql.guarded_update)
                            .bind(spent.to_db_string())
                            .bind(reserved.to_db_string())
                            .bind(t.now)
                            .bind(t.tenant)
                            .bind(w.id)
                            .bind(w.spent.to_db_string())
                            .bind(w.reserved.to_db_string())
                            .execute(&mut *tx)
                            .await?;
                        if done.rows_affected() != 1 {
                            return Err("a window moved under its lock".into());
                        }
                        entries.push(Entry {
                            window: i,
                            entry_type: "capture",
                            bucket: "reserved",
                            direction: "credit",
                            amount: line_held,
                        });
                        if !t.capture.is_zero() {
                            entries.push(Entry {
                                window: i,
                                entry_type: "capture",
                                bucket: "spent",
                                direction: "debit",
                                amount: t.capture,
                            });
                        }
                    }
                    insert_ledger(&mut tx, sql, t, id, &windows, &entries).await?;
                    sqlx::query(sql.capture_lines)
                        .bind(t.capture.to_db_string())
                        .bind(t.tenant)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    let row = sqlx::query(sql.capture_reservation)
                        .bind(t.capture.to_db_string())
                        .bind("captured")
                        .bind(Some(t.now))
                        .bind(t.now)
                        .bind(id)
                        .fetch_one(&mut *tx)
                        .await?;
                    let status: String = row.try_get(10)?;
                    if status != "captured" {
                        return Err("the capture did not read back".into());
                    }
                    tx.commit().await?;
                    Ok(())
                }

                pub async fn pair(
                    pool: &sqlx::Pool<$db>,
                    sql: &Sql,
                    t: &Target,
                ) -> Result<(), Error> {
                    let id = reserve(pool, sql, t).await?;
                    capture(pool, sql, t, id).await
                }
            }
        };
    }

    driver!(sqlite, sqlx::Sqlite);
    driver!(postgres, sqlx::Postgres);

    enum Pool {
        Sqlite(sqlx::SqlitePool),
        Postgres(sqlx::PgPool),
    }

    /// The baseline bound to a store's own sqlx pool.
    pub struct Raw {
        pool: Pool,
        sql: Sql,
        target: Target,
    }

    impl Raw {
        pub fn new(store: &Store, target: Target) -> Self {
            let conn = store.connection();
            let (pool, postgres) = match store.backend() {
                bursar::store::Backend::Postgres => (
                    Pool::Postgres(conn.get_postgres_connection_pool().clone()),
                    true,
                ),
                _ => (
                    Pool::Sqlite(conn.get_sqlite_connection_pool().clone()),
                    false,
                ),
            };
            Self {
                pool,
                sql: Sql::new(postgres),
                target,
            }
        }

        /// One reservation and its capture.
        pub async fn pair(&self) -> Result<(), Error> {
            match &self.pool {
                Pool::Sqlite(pool) => sqlite::pair(pool, &self.sql, &self.target).await,
                Pool::Postgres(pool) => postgres::pair(pool, &self.sql, &self.target).await,
            }
        }
    }
}
