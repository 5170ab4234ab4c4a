//! The cost of tracing on `authorize`: one approved purchase (an agent budget,
//! audit entry, intent and reservation) per call, with no subscriber and with
//! a formatting subscriber at `INFO` writing to a sink, in the same run.
//!
//! ```text
//! cargo bench --bench authorize
//! BURSAR_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench authorize
//! ```
//!
//! Each variant is measured by criterion, then both run in 16 alternating
//! rounds of about 0.15 s and are compared on their medians (the tables grow
//! as the bench runs; alternating keeps both variants on the same tables).
//! Output ends with one line per backend; a run on 2 cores while other
//! builds ran (load average about 9, see docs/performance.md) printed:
//!
//! ```text
//! authorize sqlite-memory: untraced 3846 µs, traced 3685 µs = -4.2%
//! authorize postgres: untraced 19785 µs, traced 20322 µs = +2.7%
//! ```

use bursar::store::TenantRepository as _;
use std::sync::Arc;
use std::time::Duration;

use bursar::clock::ManualClock;
use bursar::money::Currency;
use bursar::policy::{Request, SpendingControls};
use bursar::store::{AgentRepository, NewAgent, NewTenant};
use bursar::{Store, TenantScope};
use chrono::{DateTime, TimeZone, Utc};
use criterion::Criterion;

#[path = "common/rounds.rs"]
mod rounds;
use rounds::{batch, median};
use rust_decimal::Decimal;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 15, 12, 0, 0)
        .single()
        .expect("a valid instant")
}

struct Setup {
    acme: TenantScope,
    agent: bursar::id::AgentId,
}

async fn setup(backend: &str) -> Option<Setup> {
    let url = match backend {
        "sqlite-memory" => "sqlite::memory:".to_owned(),
        _ => {
            let base = std::env::var("BURSAR_TEST_POSTGRES_URL").ok()?;
            let schema = format!("bench_{}", uuid::Uuid::now_v7().simple());
            let admin = sqlx::PgPool::connect(&base).await.expect("postgres");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(&admin)
                .await
                .expect("schema");
            let sep = if base.contains('?') { '&' } else { '?' };
            format!("{base}{sep}options=-c%20search_path%3D{schema}")
        }
    };
    let store = Store::builder(&url)
        .clock(Arc::new(ManualClock::new(now())))
        .connect()
        .await
        .expect("store");
    let tenant = store
        .tenants()
        .create(NewTenant::new("Bench", "bench"))
        .await
        .expect("tenant");
    let acme = store.tenant(tenant.id);
    let agent = acme
        .agents()
        .create(NewAgent::new("bot"))
        .await
        .expect("agent")
        .id;
    let big: Decimal = "1000000000000".parse().expect("limit");
    acme.apply_controls(
        &SpendingControls::new(Currency::USD)
            .agent(agent)
            .per_transaction_limit(Decimal::from(200))
            .monthly_limit(big)
            .build()
            .expect("controls"),
    )
    .await
    .expect("controls");
    Some(Setup { acme, agent })
}

async fn authorize(s: &Setup) {
    let request = Request::purchase(s.agent, Decimal::from(3), Currency::USD, "Tools Inc");
    let outcome = s.acme.authorize(request).await.expect("authorize");
    assert!(outcome.is_approved(), "{:?}", outcome.reasons);
}

/// A host's usual subscriber: formatted lines at `INFO`, here into a sink.
fn subscriber() -> impl tracing::Subscriber + Send + Sync {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::sink)
        .finish()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut criterion = Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500))
        .configure_from_args();
    let mut lines = Vec::new();
    for backend in ["sqlite-memory", "postgres"] {
        let Some(s) = runtime.block_on(setup(backend)) else {
            println!("authorize {backend}: skipped (BURSAR_TEST_POSTGRES_URL not set)");
            continue;
        };
        let mut group = criterion.benchmark_group(format!("authorize/{backend}"));
        group.bench_function("untraced", |b| {
            b.iter(|| runtime.block_on(authorize(&s)));
        });
        group.bench_function("traced", |b| {
            let _guard = tracing::subscriber::set_default(subscriber());
            b.iter(|| runtime.block_on(authorize(&s)));
        });
        group.finish();
        let (mut plain, mut traced) = (Vec::new(), Vec::new());
        for _ in 0..16 {
            plain.push(runtime.block_on(batch(Duration::from_millis(150), || authorize(&s))));
            let guard = tracing::subscriber::set_default(subscriber());
            traced.push(runtime.block_on(batch(Duration::from_millis(150), || authorize(&s))));
            drop(guard);
        }
        let (plain, traced) = (median(plain), median(traced));
        let line = format!(
            "authorize {backend}: untraced {} µs, traced {} µs = {:+.1}%",
            plain.as_micros(),
            traced.as_micros(),
            100.0 * (traced.as_secs_f64() / plain.as_secs_f64() - 1.0)
        );
        println!("{line}");
        lines.push(line);
    }
    println!();
    for line in lines {
        println!("{line}");
    }
}
