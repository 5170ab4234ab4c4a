//! Metered LLM calls per second (pre-flight `begin` + post-flight `finish`)
//! beside bursar's own reserve + capture, on the same budget windows and on one.
//!
//! ```text
//! cargo bench --bench metering
//! BURSAR_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench metering
//! ```
//!
//! A metered call does everything a reservation does (policies, the budget
//! windows, the hold, the capture, the ledger) and more: it names a run (whose
//! row is locked and whose rounds and tokens are counted), reads the model's
//! price, records the intent as an `llm_usage` action with its audit entry,
//! and writes a usage record with its own. The call's run has a cost cap, so
//! the call holds on two windows: the agent's monthly budget and the run's.
//! Two baselines, each one `reserve` + `capture` through bursar on the same
//! database: one naming the same run (held on the same two windows), one
//! naming the agent alone (one window). All three are measured by criterion,
//! then in 16 interleaved rounds of about 0.15 s each, compared on their
//! medians; the line printed per backend has this form (figures illustrative):
//!
//! ```text
//! metering sqlite-memory: metered 500/s (2000 µs) vs reserve+capture on the run's windows 770/s (1300 µs) = 65.0%, on the agent's window alone 1000/s (1000 µs) = 50.0%
//! ```
//!
//! Backends: in-memory SQLite, file SQLite (WAL) and, when
//! `BURSAR_TEST_POSTGRES_URL` is set, PostgreSQL (a fresh schema).

use std::sync::Arc;
use std::time::Duration;

use bursar::budget::Principal;
use bursar::clock::ManualClock;
use bursar::money::Money;
use bursar::store::{
    AgentRepository, BudgetRepository, MeterRequest, NewAgent, NewBudget, NewPrice, NewRun,
    NewTenant, ReservationRepository, ReserveRequest, TenantRepository, Usage,
};
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
    run: bursar::id::RunId,
    _dir: Option<tempfile::TempDir>,
}

async fn setup(backend: &str) -> Option<Setup> {
    let mut dir = None;
    let url = match backend {
        "sqlite-memory" => "sqlite::memory:".to_owned(),
        "sqlite-file" => {
            let d = tempfile::tempdir().expect("tempdir");
            let url = format!("sqlite://{}?mode=rwc", d.path().join("bench.db").display());
            dir = Some(d);
            url
        }
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
        .create(NewTenant::new("Bench", "bench").default_allow(true))
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
    acme.budgets()
        .create(NewBudget::agent(agent).monthly(big, "USD"))
        .await
        .expect("budget");
    acme.prices()
        .set(
            NewPrice::new(
                "acme-ai",
                "small",
                "USD",
                Decimal::from(2),
                Decimal::from(10),
            )
            .effective_from(now() - chrono::Duration::days(1)),
        )
        .await
        .expect("price");
    let run = acme
        .runs()
        .start(
            NewRun::new(agent)
                .max_cost(Money::new(big, bursar::money::Currency::USD).expect("cap")),
        )
        .await
        .expect("run")
        .id;
    Some(Setup {
        acme,
        agent,
        run,
        _dir: dir,
    })
}

async fn metered(s: &Setup) {
    let begun = s
        .acme
        .meter()
        .begin(
            MeterRequest::new(s.agent, "acme-ai", "small", 2_000)
                .max_output_tokens(500)
                .run(s.run),
        )
        .await
        .expect("begin");
    assert!(begun.is_approved());
    s.acme
        .meter()
        .finish(
            begun.intent.id,
            Usage {
                input_tokens: 2_000,
                output_tokens: 300,
                ..Usage::default()
            },
        )
        .await
        .expect("finish");
}

/// One reserve + capture. `of_run` names the metered calls' run, so that the
/// hold is on the same two windows as theirs (the agent's budget and the
/// run's cost cap); without it the hold is on the agent's budget alone.
async fn reserve_capture(s: &Setup, of_run: bool) {
    let hold = Money::parse("0.009", "USD").expect("hold");
    let principal = if of_run {
        Principal::agent(s.agent).run(s.run)
    } else {
        Principal::agent(s.agent)
    };
    let outcome = s
        .acme
        .reservations()
        .reserve(
            ReserveRequest::new(hold, now() + chrono::Duration::minutes(15)).principal(principal),
        )
        .await
        .expect("reserve");
    let id = outcome.reservation().expect("held").id;
    s.acme
        .reservations()
        .capture(id, Money::parse("0.007", "USD").expect("capture"))
        .await
        .expect("capture");
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
    for backend in ["sqlite-memory", "sqlite-file", "postgres"] {
        let Some(s) = runtime.block_on(setup(backend)) else {
            println!("metering {backend}: skipped (BURSAR_TEST_POSTGRES_URL not set)");
            continue;
        };
        let mut group = criterion.benchmark_group(format!("metering/{backend}"));
        group.bench_function("metered call", |b| {
            b.iter(|| runtime.block_on(metered(&s)));
        });
        group.bench_function("reserve+capture (run's windows)", |b| {
            b.iter(|| runtime.block_on(reserve_capture(&s, true)));
        });
        group.bench_function("reserve+capture (agent's window)", |b| {
            b.iter(|| runtime.block_on(reserve_capture(&s, false)));
        });
        group.finish();
        let (mut m, mut r, mut a) = (Vec::new(), Vec::new(), Vec::new());
        let round = Duration::from_millis(150);
        for _ in 0..16 {
            m.push(runtime.block_on(batch(round, || metered(&s))));
            r.push(runtime.block_on(batch(round, || reserve_capture(&s, true))));
            a.push(runtime.block_on(batch(round, || reserve_capture(&s, false))));
        }
        let (m, r, a) = (median(m), median(r), median(a));
        let rate = |d: Duration| 1.0 / d.as_secs_f64();
        let ratio = |d: Duration| 100.0 * d.as_secs_f64() / m.as_secs_f64();
        let line = format!(
            "metering {backend}: metered {:.0}/s ({} µs) vs reserve+capture on the run's windows {:.0}/s ({} µs) = {:.1}%, on the agent's window alone {:.0}/s ({} µs) = {:.1}%",
            rate(m),
            m.as_micros(),
            rate(r),
            r.as_micros(),
            ratio(r),
            rate(a),
            a.as_micros(),
            ratio(a),
        );
        println!("{line}");
        lines.push(line);
        let report = runtime
            .block_on(s.acme.reservations().reconcile())
            .expect("reconcile");
        assert!(report.is_clean(), "{report:?}");
    }
    println!();
    for line in lines {
        println!("{line}");
    }
}
