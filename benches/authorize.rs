//! `authorize` against the database's limit: full authorizations per second
//! (an approved purchase on a three-level budget hierarchy — agent daily,
//! team monthly, tenant monthly — with its intent, reservation, lines,
//! ledger entries and audit entry), beside the least work that gives the same
//! guarantee, in the same run:
//!
//! ```text
//! BURSAR_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/bench_authorize \
//!     cargo bench --bench authorize
//! # a quick pass (one short round each, 10,000 pre-filled rows):
//! BURSAR_BENCH_QUICK=1 cargo bench --bench authorize
//! # only some parts (any of minimal, group, big, tracing):
//! BURSAR_BENCH_PARTS=big,group cargo bench --bench authorize
//! # big tables with the STAT4 samples ANALYZE gathers on SQLite dropped:
//! BURSAR_BENCH_PARTS=big BURSAR_BENCH_SQLITE_STAT4=drop cargo bench --bench authorize
//! ```
//!
//! * **bursar / minimal**, per backend (in-memory SQLite, file SQLite in WAL
//!   mode, PostgreSQL when `BURSAR_TEST_POSTGRES_URL` is set) and for 1, 8
//!   and 64 concurrent clients on one tenant: calls per second and p50 / p99
//!   latency of `TenantScope::authorize`, and the same for the minimal
//!   baseline of `benches/common/minimal.rs` (on PostgreSQL one
//!   data-modifying CTE in a transaction, three round trips; on SQLite eight
//!   statements in one `BEGIN IMMEDIATE`) issued raw through the store's own
//!   sqlx pool, on its own tenant of the same database. Each pair runs in
//!   alternating rounds and throughput is the median of the rounds. A third
//!   column is the same-statements baseline of
//!   `benches/common/same_statements.rs`: the 21 statements (20 on SQLite)
//!   bursar itself sends, hand-written on the same pool.
//! * **C speed**, on SQLite with one client: the minimal statements through
//!   rusqlite, on the same SQLite library, beside the same statements through
//!   sqlx, which shows what the driver costs.
//! * **big tables**, on file SQLite and PostgreSQL: bursar on a tenant whose
//!   database already holds 1,000,000 intents and 1,000,000 reservations
//!   (`BURSAR_BENCH_PREFILL` rows; bulk-inserted in SQL) against bursar on an
//!   empty database, both then analyzed (`ANALYZE`), so that the ratio is
//!   what the size costs; and bursar on a third, empty database never
//!   analyzed, which shows what the statistics cost. In alternating rounds.
//! * **group commit**, on file SQLite and PostgreSQL for 1 and 64 clients:
//!   bursar on a store with `StoreBuilder::group_commit` (batches of 64 at
//!   most, `max_wait` zero) against bursar on a store without it, each on its
//!   own tenant of the same database, in alternating rounds, with the
//!   requests per batch.
//! * **tracing**: `authorize` with and without a formatting subscriber, as a
//!   criterion group (`authorize/<backend>/untraced` and `…/traced`) and in
//!   16 alternating rounds.
//!
//! After the runs every tenant is reconciled (windows against their ledger
//! entries and limits) and its audit chain verified; the run fails otherwise.
//! Results and the machine they were taken on are in docs/performance.md,
//! "Authorize against the minimal baseline"; a full run on 2 cores under a
//! load average of 6 to 9 printed, among its lines:
//!
//! ```text
//! authorize postgres 64 clients: bursar 61/s p50 634.35 ms p99 2001.92 ms | minimal 160/s p50 349.06 ms p99 643.91 ms (bursar/minimal 38.4%) | same-statements 91/s p50 568.14 ms p99 1269.13 ms (bursar/same 67.7%)
//! authorize sqlite-memory C speed, 1 client: rusqlite minimal 1433/s p50 0.20 ms p99 8.50 ms | sqlx minimal 831/s p50 0.95 ms p99 6.09 ms (sqlx/rusqlite 58.0%) | bursar 241/s p50 3.17 ms p99 21.36 ms (bursar/rusqlite 16.8%)
//! ```

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bursar::money::Amount;
use criterion::Criterion;
use rust_decimal::Decimal;
use sqlx::AssertSqlSafe;

#[path = "common/minimal.rs"]
mod minimal;
#[path = "common/periods.rs"]
mod periods;
#[path = "common/rounds.rs"]
mod rounds;
#[path = "common/same_statements.rs"]
mod same_statements;
#[path = "common/authorize_setup.rs"]
mod setup;
#[path = "common/sql_text.rs"]
mod sql_text;

use setup::{Backend, Database, Tenant};

/// How long and how often the engines of a comparison run.
#[derive(Clone, Copy)]
struct Plan {
    rounds: usize,
    round: Duration,
    prefill: u64,
    /// `BURSAR_BENCH_PARTS`: which parts run (`minimal`, `group`, `big`,
    /// `tracing`, comma-separated; all when unset).
    parts: Option<&'static str>,
}

impl Plan {
    fn from_env() -> Self {
        let quick = std::env::var("BURSAR_BENCH_QUICK").is_ok_and(|v| v != "0")
            || std::env::args().any(|a| a == "--test");
        let prefill = std::env::var("BURSAR_BENCH_PREFILL")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if quick { 10_000 } else { 1_000_000 });
        let parts = std::env::var("BURSAR_BENCH_PARTS")
            .ok()
            .map(|v| &*Box::leak(v.into_boxed_str()));
        if quick {
            Self {
                rounds: 1,
                round: Duration::from_millis(100),
                prefill,
                parts,
            }
        } else {
            Self {
                rounds: 8,
                round: Duration::from_millis(600),
                prefill,
                parts,
            }
        }
    }

    /// Whether the part named `part` runs.
    fn runs(&self, part: &str) -> bool {
        self.parts
            .is_none_or(|parts| parts.split(',').any(|p| p.trim() == part))
    }
}

/// One way of authorizing.
enum Engine {
    Bursar(Tenant),
    MinimalSqlite {
        pool: sqlx::SqlitePool,
        sql: minimal::sqlite_sql::Sql,
        target: minimal::Target,
    },
    MinimalPostgres {
        pool: sqlx::PgPool,
        begin: String,
        target: minimal::Target,
    },
    SameSqlite {
        pool: sqlx::SqlitePool,
        sql: same_statements::Sql,
        target: minimal::Target,
    },
    SamePostgres {
        pool: sqlx::PgPool,
        sql: same_statements::Sql,
        target: minimal::Target,
    },
    /// The minimal statements through rusqlite, one connection.
    Rusqlite {
        conn: Mutex<rusqlite::Connection>,
        sql: minimal::sqlite_sql::Sql,
        target: minimal::Target,
    },
}

impl Engine {
    async fn call(&self) {
        match self {
            Engine::Bursar(t) => t.authorize().await,
            Engine::MinimalSqlite { pool, sql, target } => {
                minimal::sqlite::authorize(pool, sql, target)
                    .await
                    .expect("minimal sqlite");
            }
            Engine::MinimalPostgres {
                pool,
                begin,
                target,
            } => {
                minimal::postgres::authorize(pool, begin, target)
                    .await
                    .expect("minimal postgres");
            }
            Engine::SameSqlite { pool, sql, target } => {
                same_statements::sqlite::authorize(pool, sql, target)
                    .await
                    .expect("same statements sqlite");
            }
            Engine::SamePostgres { pool, sql, target } => {
                same_statements::postgres::authorize(pool, sql, target)
                    .await
                    .expect("same statements postgres");
            }
            Engine::Rusqlite { conn, sql, target } => {
                let conn = conn.lock().expect("the connection");
                minimal::rusqlite_engine::authorize(&conn, sql, target).expect("rusqlite");
            }
        }
    }
}

/// What one engine did over the rounds.
#[derive(Default)]
struct Stats {
    rates: Vec<f64>,
    latencies: Vec<Duration>,
}

impl Stats {
    fn rate(&self) -> f64 {
        let mut v = self.rates.clone();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    }

    fn percentile(&self, p: f64) -> Duration {
        let mut v = self.latencies.clone();
        v.sort();
        if v.is_empty() {
            return Duration::ZERO;
        }
        let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
        v[i]
    }

    fn describe(&self) -> String {
        format!(
            "{:.0}/s p50 {:.2} ms p99 {:.2} ms",
            self.rate(),
            self.percentile(0.50).as_secs_f64() * 1e3,
            self.percentile(0.99).as_secs_f64() * 1e3
        )
    }
}

/// `clients` tasks call `engine` until `budget` has passed; returns the
/// calls per second of the round and records every call's latency.
async fn round(engine: &Arc<Engine>, clients: usize, budget: Duration, stats: &mut Stats) {
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let engine = Arc::clone(engine);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while start.elapsed() < budget || latencies.is_empty() {
                let t0 = Instant::now();
                engine.call().await;
                latencies.push(t0.elapsed());
            }
            latencies
        }));
    }
    let mut calls = 0;
    for task in tasks {
        let latencies = task.await.expect("a client");
        calls += latencies.len();
        stats.latencies.extend(latencies);
    }
    stats
        .rates
        .push(calls as f64 / start.elapsed().as_secs_f64());
}

/// The engines in alternating rounds (the order flips every round), after
/// one unrecorded warm-up round each.
async fn interleaved(engines: &[Arc<Engine>], clients: usize, plan: Plan) -> Vec<Stats> {
    let budget = if clients >= 64 {
        plan.round * 2
    } else {
        plan.round
    };
    for engine in engines {
        round(engine, clients, plan.round / 4, &mut Stats::default()).await;
    }
    let mut stats: Vec<Stats> = engines.iter().map(|_| Stats::default()).collect();
    for r in 0..plan.rounds {
        let order: Vec<usize> = if r % 2 == 0 {
            (0..engines.len()).collect()
        } else {
            (0..engines.len()).rev().collect()
        };
        for i in order {
            round(&engines[i], clients, budget, &mut stats[i]).await;
        }
    }
    stats
}

fn ratio(a: &Stats, b: &Stats) -> f64 {
    100.0 * a.rate() / b.rate()
}

/// bursar against the minimal baseline on one backend, for each client count;
/// on SQLite also the rusqlite line.
async fn against_minimal(backend: Backend, plan: Plan, lines: &mut Vec<String>) {
    let Some(db) = Database::open(backend).await else {
        lines.push(format!(
            "authorize {}: skipped (BURSAR_TEST_POSTGRES_URL not set)",
            backend.name()
        ));
        return;
    };
    let ours = Tenant::create(&db.store).await;
    let theirs = Tenant::create(&db.store).await;
    let same = Tenant::create(&db.store).await;
    // The first call creates the windows the baselines expect (and caches
    // the policies, and records the merchant).
    for t in [&ours, &theirs, &same] {
        t.authorize().await;
    }
    let conn = db.store.connection();
    let (minimal, same_engine) = match backend {
        Backend::Postgres => (
            Engine::MinimalPostgres {
                pool: conn.get_postgres_connection_pool().clone(),
                begin: minimal::postgres::begin(theirs.id().as_uuid()),
                target: theirs.target(),
            },
            Engine::SamePostgres {
                pool: conn.get_postgres_connection_pool().clone(),
                sql: same_statements::Sql::new(true),
                target: same.target(),
            },
        ),
        _ => (
            Engine::MinimalSqlite {
                pool: conn.get_sqlite_connection_pool().clone(),
                sql: minimal::sqlite_sql::Sql::new(),
                target: theirs.target(),
            },
            Engine::SameSqlite {
                pool: conn.get_sqlite_connection_pool().clone(),
                sql: same_statements::Sql::new(false),
                target: same.target(),
            },
        ),
    };
    let engines = [
        Arc::new(Engine::Bursar(ours.clone())),
        Arc::new(minimal),
        Arc::new(same_engine),
    ];
    for clients in [1, 8, 64] {
        let stats = interleaved(&engines, clients, plan).await;
        let line = format!(
            "authorize {} {clients} client{}: bursar {} | minimal {} (bursar/minimal {:.1}%) \
             | same-statements {} (bursar/same {:.1}%)",
            backend.name(),
            if clients == 1 { "" } else { "s" },
            stats[0].describe(),
            stats[1].describe(),
            ratio(&stats[0], &stats[1]),
            stats[2].describe(),
            ratio(&stats[0], &stats[2]),
        );
        println!("{line}");
        lines.push(line);
    }
    ours.assert_consistent("bursar").await;
    theirs.assert_consistent("minimal").await;
    same.assert_consistent("same statements").await;
    drop(engines);
    db.close().await;
    if backend != Backend::Postgres {
        c_speed(backend, plan, lines).await;
    }
}

/// The minimal statements through rusqlite and through sqlx, one client, on a
/// fresh database of `backend` (its own tenant each).
async fn c_speed(backend: Backend, plan: Plan, lines: &mut Vec<String>) {
    // rusqlite cannot reach sqlx's private in-memory database: it works on
    // an in-memory copy of a migrated file, or on the file itself.
    let file_db = Database::open(Backend::SqliteFile)
        .await
        .expect("a SQLite file");
    let direct = Tenant::create(&file_db.store).await;
    direct.authorize().await;
    let path = file_db.file.clone().expect("a file");
    let db = Database::open(backend).await.expect("SQLite");
    let via_sqlx = Tenant::create(&db.store).await;
    via_sqlx.authorize().await;
    let conn = match backend {
        Backend::SqliteMemory => minimal::rusqlite_engine::memory_copy(&path),
        _ => minimal::rusqlite_engine::open_file(&path),
    }
    .expect("a rusqlite connection");
    let engines = [
        Arc::new(Engine::Rusqlite {
            conn: Mutex::new(conn),
            sql: minimal::sqlite_sql::Sql::new(),
            target: direct.target(),
        }),
        Arc::new(Engine::MinimalSqlite {
            pool: db.store.connection().get_sqlite_connection_pool().clone(),
            sql: minimal::sqlite_sql::Sql::new(),
            target: via_sqlx.target(),
        }),
        Arc::new(Engine::Bursar(via_sqlx.clone())),
    ];
    let stats = interleaved(&engines, 1, plan).await;
    let line = format!(
        "authorize {} C speed, 1 client: rusqlite minimal {} | sqlx minimal {} \
         (sqlx/rusqlite {:.1}%) | bursar {} (bursar/rusqlite {:.1}%)",
        backend.name(),
        stats[0].describe(),
        stats[1].describe(),
        ratio(&stats[1], &stats[0]),
        stats[2].describe(),
        ratio(&stats[2], &stats[0]),
    );
    println!("{line}");
    lines.push(line);
    via_sqlx.assert_consistent("sqlx minimal").await;
    match &*engines[0] {
        Engine::Rusqlite { conn, .. } if backend == Backend::SqliteMemory => {
            // What rusqlite wrote in memory is copied to a file that bursar
            // then checks.
            let dir = tempfile::tempdir().expect("a temporary directory");
            let copy = dir.path().join("copy.db");
            conn.lock()
                .expect("the connection")
                .backup(
                    rusqlite::MAIN_DB,
                    &copy,
                    None::<fn(rusqlite::backup::Progress)>,
                )
                .expect("a backup");
            let reopened = Database::reopen_file(&copy).await;
            Tenant::attach(&reopened.store, &direct)
                .assert_consistent("rusqlite minimal")
                .await;
            reopened.close().await;
        }
        _ => direct.assert_consistent("rusqlite minimal").await,
    }
    drop(engines);
    file_db.close().await;
    db.close().await;
}

/// bursar with group commit (batches of 64 at most, no waiting) against
/// bursar without it, on one database, each on its own tenant and store, for
/// 1 and 64 clients; with the mean batch size.
async fn group_commit(backend: Backend, plan: Plan, lines: &mut Vec<String>) {
    let Some(db) = Database::open(backend).await else {
        return;
    };
    let batched_store = bursar::Store::builder(&db.url)
        .clock(Arc::new(bursar::clock::ManualClock::new(setup::now())))
        .group_commit(bursar::store::GroupCommit::new().max_batch(64))
        .migrate(false)
        .connect()
        .await
        .expect("a store with group commit");
    let alone = Tenant::create(&db.store).await;
    let batched = Tenant::attach(&batched_store, &Tenant::create(&db.store).await);
    alone.authorize().await;
    batched.authorize().await;
    let engines = [
        Arc::new(Engine::Bursar(batched.clone())),
        Arc::new(Engine::Bursar(alone.clone())),
    ];
    for clients in [1, 64] {
        let before = batched_store.group_commit_stats().unwrap_or_default();
        let stats = interleaved(&engines, clients, plan).await;
        let after = batched_store.group_commit_stats().unwrap_or_default();
        let line = format!(
            "authorize {} {clients} client{} group commit: bursar batched {} | bursar alone {} \
             (batched/alone {:.1}%) | {} requests in {} batches, mean {:.1}",
            backend.name(),
            if clients == 1 { "" } else { "s" },
            stats[0].describe(),
            stats[1].describe(),
            ratio(&stats[0], &stats[1]),
            after.requests - before.requests,
            after.batches - before.batches,
            (after.requests - before.requests) as f64
                / (after.batches - before.batches).max(1) as f64,
        );
        println!("{line}");
        lines.push(line);
    }
    batched.assert_consistent("bursar with group commit").await;
    alone.assert_consistent("bursar alone").await;
    drop(engines);
    drop(batched);
    batched_store.close().await.expect("close the pool");
    db.close().await;
}

/// `rows` intents and as many reservations (captured, spread over the last
/// year) for `tenant`, in SQL.
async fn prefill(db: &Database, tenant: &Tenant, rows: u64) {
    let conn = db.store.connection();
    let tenant_id = tenant.id().as_uuid();
    let agent = tenant.agent.as_uuid();
    let amount = Amount::new(Decimal::from(setup::AMOUNT))
        .expect("an amount")
        .to_db_string();
    let zero = Amount::ZERO.to_db_string();
    let now = setup::now();
    match db.store.backend() {
        bursar::store::Backend::Postgres => {
            let pool = conn.get_postgres_connection_pool();
            sqlx::query(
                "WITH g AS MATERIALIZED (
                    SELECT gen_random_uuid() AS rid, gen_random_uuid() AS iid,
                        $3 - n * interval '30 seconds' AS at
                    FROM generate_series(1, $6) n
                ), r AS (
                    INSERT INTO reservations (id, tenant_id, agent_id, purchase_intent_id,
                        currency, amount, captured_amount, refunded_amount, status, expires_at,
                        captured_at, created_at, updated_at)
                    SELECT rid, $1, $2, iid, 'USD', $4, $4, $5, 'captured',
                        at + interval '15 minutes', at, at, at FROM g
                )
                INSERT INTO purchase_intents (id, tenant_id, agent_id, team_id, amount, currency,
                    merchant_name, action_kind, metadata, status, reasons, reservation_id,
                    created_at, updated_at)
                SELECT iid, $1, $2, $7, $4, 'USD', 'Tools Inc', 'purchase', '{}'::jsonb,
                    'approved', '[]'::jsonb, rid, at, at FROM g",
            )
            .bind(tenant_id)
            .bind(agent)
            .bind(now)
            .bind(&amount)
            .bind(&zero)
            .bind(i64::try_from(rows).expect("a row count"))
            .bind(tenant.team.as_uuid())
            .execute(pool)
            .await
            .expect("pre-fill");
        }
        _ => {
            let pool = conn.get_sqlite_connection_pool();
            let at = "strftime('%Y-%m-%dT%H:%M:%S+00:00', ?3 - n * 30, 'unixepoch')";
            let expires = "strftime('%Y-%m-%dT%H:%M:%S+00:00', ?3 - n * 30 + 900, 'unixepoch')";
            let id = |tag: &str| format!("unhex('ff{tag}' || printf('%028x', n))");
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("begin");
            let (rid, iid) = (id("01"), id("02"));
            let reservations = format!(
                "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ?6)
                INSERT INTO reservations (id, tenant_id, agent_id, purchase_intent_id, currency,
                    amount, captured_amount, refunded_amount, status, expires_at, captured_at,
                    created_at, updated_at)
                SELECT {rid}, ?1, ?2, {iid}, 'USD', ?4, ?4, ?5, 'captured', {expires}, {at},
                    {at}, {at} FROM g"
            );
            let intents = format!(
                "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ?6)
                INSERT INTO purchase_intents (id, tenant_id, agent_id, team_id, amount, currency,
                    merchant_name, action_kind, metadata, status, reasons, reservation_id,
                    created_at, updated_at)
                SELECT {iid}, ?1, ?2, ?7, ?4, 'USD', 'Tools Inc', 'purchase', '{{}}', 'approved',
                    '[]', {rid}, {at}, {at} FROM g"
            );
            for statement in [reservations, intents] {
                sqlx::query(AssertSqlSafe(statement))
                    .bind(tenant_id)
                    .bind(agent)
                    .bind(now.timestamp())
                    .bind(&amount)
                    .bind(&zero)
                    .bind(i64::try_from(rows).expect("a row count"))
                    .bind(tenant.team.as_uuid())
                    .execute(&mut *tx)
                    .await
                    .expect("pre-fill");
            }
            tx.commit().await.expect("commit");
        }
    }
}

/// Refreshes the planner's statistics of `db` (`ANALYZE`).
async fn analyze(db: &Database) {
    let conn = db.store.connection();
    match db.store.backend() {
        bursar::store::Backend::Postgres => {
            let pool = conn.get_postgres_connection_pool();
            sqlx::query("ANALYZE").execute(pool).await.expect("analyze");
        }
        _ => {
            let pool = conn.get_sqlite_connection_pool();
            sqlx::query("ANALYZE").execute(pool).await.expect("analyze");
            if std::env::var("BURSAR_BENCH_SQLITE_STAT4").is_ok_and(|v| v == "drop") {
                // What the STAT4 samples cost (docs/performance.md): the
                // statistics without them, reloaded.
                sqlx::query("DELETE FROM sqlite_stat4")
                    .execute(pool)
                    .await
                    .expect("drop the STAT4 samples");
                sqlx::query("ANALYZE sqlite_schema")
                    .execute(pool)
                    .await
                    .expect("reload the statistics");
            }
        }
    }
}

/// bursar on a pre-filled database against bursar on an empty one, both
/// with the planner's statistics refreshed (`ANALYZE`), so that the ratio is
/// what the tables' size costs; a third, empty database never analyzed shows
/// what the statistics themselves cost.
async fn big_tables(backend: Backend, plan: Plan, lines: &mut Vec<String>) {
    let Some(empty) = Database::open(backend).await else {
        return;
    };
    let full = Database::open(backend).await.expect("a second database");
    let plain = Database::open(backend).await.expect("a third database");
    let on_empty = Tenant::create(&empty.store).await;
    let on_full = Tenant::create(&full.store).await;
    let on_plain = Tenant::create(&plain.store).await;
    let started = Instant::now();
    prefill(&full, &on_full, plan.prefill).await;
    let filled_in = started.elapsed();
    analyze(&full).await;
    analyze(&empty).await;
    for tenant in [&on_empty, &on_full, &on_plain] {
        tenant.authorize().await;
    }
    let engines = [
        Arc::new(Engine::Bursar(on_full.clone())),
        Arc::new(Engine::Bursar(on_empty.clone())),
        Arc::new(Engine::Bursar(on_plain.clone())),
    ];
    for clients in [1, 8] {
        let stats = interleaved(&engines, clients, plan).await;
        let line = format!(
            "authorize {} {clients} client{} big tables ({} intents + {} reservations, \
             filled in {:.0} s; both analyzed): bursar {} | empty tables {} (big/empty {:.1}%) \
             | empty, never analyzed {} (analyzed/never {:.1}%)",
            backend.name(),
            if clients == 1 { "" } else { "s" },
            plan.prefill,
            plan.prefill,
            filled_in.as_secs_f64(),
            stats[0].describe(),
            stats[1].describe(),
            ratio(&stats[0], &stats[1]),
            stats[2].describe(),
            ratio(&stats[1], &stats[2]),
        );
        println!("{line}");
        lines.push(line);
    }
    on_full.assert_consistent("bursar on big tables").await;
    drop(engines);
    empty.close().await;
    full.close().await;
    plain.close().await;
}

/// A host's usual subscriber: formatted lines at `INFO`, here into a sink.
fn subscriber() -> impl tracing::Subscriber + Send + Sync {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::sink)
        .finish()
}

/// `authorize` with and without a subscriber: a criterion group per backend,
/// then 16 alternating rounds of about 0.15 s compared on their medians.
fn tracing_cost(
    runtime: &tokio::runtime::Runtime,
    criterion: &mut Criterion,
    lines: &mut Vec<String>,
) {
    for backend in [Backend::SqliteMemory, Backend::Postgres] {
        let Some(db) = runtime.block_on(Database::open(backend)) else {
            continue;
        };
        let t = runtime.block_on(Tenant::create(&db.store));
        let mut group = criterion.benchmark_group(format!("authorize/{}", backend.name()));
        group.bench_function("untraced", |b| {
            b.iter(|| runtime.block_on(t.authorize()));
        });
        group.bench_function("traced", |b| {
            let _guard = tracing::subscriber::set_default(subscriber());
            b.iter(|| runtime.block_on(t.authorize()));
        });
        group.finish();
        let (mut plain, mut traced) = (Vec::new(), Vec::new());
        let budget = Duration::from_millis(150);
        for _ in 0..16 {
            plain.push(runtime.block_on(rounds::batch(budget, || t.authorize())));
            let guard = tracing::subscriber::set_default(subscriber());
            traced.push(runtime.block_on(rounds::batch(budget, || t.authorize())));
            drop(guard);
        }
        let (plain, traced) = (rounds::median(plain), rounds::median(traced));
        let line = format!(
            "authorize {}: untraced {} µs, traced {} µs = {:+.1}%",
            backend.name(),
            plain.as_micros(),
            traced.as_micros(),
            100.0 * (traced.as_secs_f64() / plain.as_secs_f64() - 1.0)
        );
        println!("{line}");
        lines.push(line);
        runtime.block_on(db.close());
    }
}

fn environment(runtime: &tokio::runtime::Runtime) {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "cores: {}, load average: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.trim()
    );
    runtime.block_on(async {
        let db = Database::open(Backend::SqliteMemory).await.expect("sqlite");
        let version: String = sqlx::query_scalar("SELECT sqlite_version()")
            .fetch_one(db.store.connection().get_sqlite_connection_pool())
            .await
            .expect("the SQLite version");
        println!(
            "SQLite {version} (sqlx), {} (rusqlite)",
            rusqlite::version()
        );
        db.close().await;
        if let Some(db) = Database::open(Backend::Postgres).await {
            let version: String = sqlx::query_scalar("SHOW server_version")
                .fetch_one(db.store.connection().get_postgres_connection_pool())
                .await
                .expect("the PostgreSQL version");
            println!("PostgreSQL {version}");
            db.close().await;
        }
    });
}

fn main() {
    let plan = Plan::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut criterion = Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500))
        .configure_from_args();
    environment(&runtime);
    let mut lines = Vec::new();
    if plan.runs("minimal") {
        for backend in [
            Backend::SqliteMemory,
            Backend::SqliteFile,
            Backend::Postgres,
        ] {
            runtime.block_on(against_minimal(backend, plan, &mut lines));
        }
    }
    if plan.runs("group") {
        for backend in [Backend::SqliteFile, Backend::Postgres] {
            runtime.block_on(group_commit(backend, plan, &mut lines));
        }
    }
    if plan.runs("big") {
        for backend in [Backend::SqliteFile, Backend::Postgres] {
            runtime.block_on(big_tables(backend, plan, &mut lines));
        }
    }
    if plan.runs("tracing") {
        tracing_cost(&runtime, &mut criterion, &mut lines);
    }
    criterion.final_summary();
    println!();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at the end: {}", load.trim());
    for line in lines {
        println!("{line}");
    }
}
