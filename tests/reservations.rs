//! Budgets and reservations: atomic holds that never overspend.

mod common;

use std::sync::Arc;

use bursar::budget::Principal;
use bursar::clock::ManualClock;
use bursar::codes;
use bursar::entity::reservation::ReservationStatus;
use bursar::money::Money;
use bursar::store::{
    BudgetRepository, GroupCommit, NewBudget, NewTenant, ReservationRepository, ReserveOutcome,
    ReserveRequest, TenantRepository, TenantScope,
};
use bursar::{Error, Store};
use chrono::{DateTime, Duration, TimeZone, Utc};
use common::{Backend, backends, dec, fresh_postgres_schema, postgres_url, sqlite_file_url};

fn usd(s: &str) -> Money {
    Money::parse(s, "USD").unwrap()
}

fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 15, 12, 0, 0).unwrap()
}

async fn store_at(backend: Backend, clock: Arc<ManualClock>) -> Store {
    let url = match backend {
        Backend::SqliteMemory => "sqlite::memory:".to_owned(),
        Backend::Postgres => fresh_postgres_schema().await,
    };
    Store::builder(&url).clock(clock).connect().await.unwrap()
}

async fn tenant(store: &Store, tz: &str) -> TenantScope {
    let slug = format!("t{}", uuid::Uuid::now_v7().simple());
    let t = store
        .tenants()
        .create(NewTenant::new("Acme", slug).timezone(tz))
        .await
        .unwrap();
    store.tenant(t.id)
}

async fn assert_ledger_clean(scope: &TenantScope) {
    let report = scope.reservations().reconcile().await.unwrap();
    assert!(
        report.is_clean(),
        "ledger differs from balances: {report:#?}"
    );
}

fn held(outcome: &ReserveOutcome) -> bursar::id::ReservationId {
    outcome.reservation().expect("reserved").id
}

#[tokio::test]
async fn limit_point_three_takes_point_one_and_point_two_and_not_one_unit_more() {
    for backend in backends() {
        let clock = Arc::new(ManualClock::new(noon()));
        let store = store_at(backend, clock.clone()).await;
        let acme = tenant(&store, "UTC").await;
        acme.budgets()
            .create(NewBudget::tenant().monthly(dec("0.3"), "USD"))
            .await
            .unwrap();
        let later = noon() + Duration::hours(1);
        let r = acme.reservations();
        assert!(
            r.reserve(ReserveRequest::new(usd("0.1"), later))
                .await
                .unwrap()
                .reservation()
                .is_some()
        );
        assert!(
            r.reserve(ReserveRequest::new(usd("0.2"), later))
                .await
                .unwrap()
                .reservation()
                .is_some()
        );
        let third = r
            .reserve(ReserveRequest::new(usd("0.000001"), later))
            .await
            .unwrap();
        let shortfalls = third.shortfalls();
        assert_eq!(shortfalls.len(), 1, "{backend:?}");
        assert_eq!(shortfalls[0].code, codes::ORG_BUDGET_EXCEEDED);
        assert_eq!(shortfalls[0].remaining, dec("0"));
        assert_eq!(shortfalls[0].limit, dec("0.3"));
        assert_ledger_clean(&acme).await;
    }
}

#[tokio::test]
async fn a_hierarchy_rejects_on_the_team_budget_and_moves_no_window() {
    for backend in backends() {
        let clock = Arc::new(ManualClock::new(noon()));
        let store = store_at(backend, clock.clone()).await;
        let acme = tenant(&store, "America/New_York").await;
        let team = common::team(&acme, "research").await;
        let agent = common::agent(&acme, "bot", Some(team)).await;
        let b = acme.budgets();
        let agent_daily = b
            .create(NewBudget::agent(agent).daily(dec("100"), "USD"))
            .await
            .unwrap();
        let team_monthly = b
            .create(NewBudget::team(team).monthly(dec("1000"), "USD"))
            .await
            .unwrap();
        let tenant_monthly = b
            .create(NewBudget::tenant().monthly(dec("5000"), "USD"))
            .await
            .unwrap();
        let later = noon() + Duration::hours(1);
        // Use up most of the team's month through another agent of the team.
        let other = common::agent(&acme, "other", Some(team)).await;
        let big = acme
            .reservations()
            .reserve(
                ReserveRequest::new(usd("950"), later)
                    .principal(Principal::agent(other).team(team)),
            )
            .await
            .unwrap();
        assert!(big.reservation().is_some());

        let outcome = acme
            .reservations()
            .reserve(
                ReserveRequest::new(usd("60"), later).principal(Principal::agent(agent).team(team)),
            )
            .await
            .unwrap();
        let shortfalls = outcome.shortfalls();
        assert_eq!(shortfalls.len(), 1, "{backend:?}: {shortfalls:?}");
        assert_eq!(shortfalls[0].budget_id, team_monthly.id);
        assert_eq!(shortfalls[0].code, codes::MONTHLY_LIMIT_EXCEEDED);
        assert_eq!(shortfalls[0].remaining, dec("50"));
        assert_eq!(shortfalls[0].limit, dec("1000"));

        // No window moved for the rejected request.
        assert_eq!(
            b.status(agent_daily.id).await.unwrap().balance.reserved,
            dec("0")
        );
        assert_eq!(
            b.status(team_monthly.id).await.unwrap().balance.reserved,
            dec("950")
        );
        assert_eq!(
            b.status(tenant_monthly.id).await.unwrap().balance.reserved,
            dec("950")
        );

        // A smaller one fits every level and holds on all three.
        let ok = acme
            .reservations()
            .reserve(
                ReserveRequest::new(usd("50"), later).principal(Principal::agent(agent).team(team)),
            )
            .await
            .unwrap();
        let ReserveOutcome::Reserved { lines, .. } = &ok else {
            panic!("{ok:?}")
        };
        assert_eq!(lines.len(), 3);
        assert_eq!(
            b.status(agent_daily.id).await.unwrap().balance.reserved,
            dec("50")
        );
        assert_eq!(
            b.status(tenant_monthly.id).await.unwrap().balance.reserved,
            dec("1000")
        );
        assert_ledger_clean(&acme).await;
    }
}

#[tokio::test]
async fn capture_partial_moves_to_spent_and_releases_the_rest() {
    for backend in backends() {
        let clock = Arc::new(ManualClock::new(noon()));
        let store = store_at(backend, clock.clone()).await;
        let acme = tenant(&store, "UTC").await;
        let budget = acme
            .budgets()
            .create(NewBudget::tenant().monthly(dec("100"), "USD"))
            .await
            .unwrap();
        let r = acme.reservations();
        let id = held(
            &r.reserve(ReserveRequest::new(usd("30"), noon() + Duration::hours(1)))
                .await
                .unwrap(),
        );

        let captured = r.capture(id, usd("29.50")).await.unwrap();
        assert_eq!(captured.status, ReservationStatus::Captured);
        let balance = acme.budgets().status(budget.id).await.unwrap().balance;
        assert_eq!(
            (balance.spent, balance.reserved),
            (dec("29.5"), dec("0")),
            "{backend:?}"
        );

        // The same capture again is a no-op; another amount is a conflict.
        r.capture(id, usd("29.50")).await.unwrap();
        let err = r.capture(id, usd("30")).await.unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
        // A settlement is a fact: a released reservation settled later is
        // still captured, on the windows it was authorized in.
        let other = held(
            &r.reserve(ReserveRequest::new(usd("5"), noon() + Duration::hours(1)))
                .await
                .unwrap(),
        );
        r.release(other).await.unwrap();
        let late = r.capture(other, usd("0.50")).await.unwrap();
        assert_eq!(late.status, ReservationStatus::Captured);
        assert_eq!(late.captured_amount.get(), dec("0.5"));
        // Currency and amount are checked and named.
        let third = held(
            &r.reserve(ReserveRequest::new(usd("5"), noon() + Duration::hours(1)))
                .await
                .unwrap(),
        );
        let err = r
            .capture(third, Money::parse("5", "EUR").unwrap())
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Invalid { ref field, .. } if field == "currency"),
            "{err:?}"
        );
        let err = r.capture(third, usd("-1")).await.unwrap_err();
        assert!(
            matches!(err, Error::Invalid { ref field, .. } if field == "amount"),
            "{err:?}"
        );
        let balance = acme.budgets().status(budget.id).await.unwrap().balance;
        assert_eq!((balance.spent, balance.reserved), (dec("30"), dec("5")));
        assert_ledger_clean(&acme).await;
    }
}

#[tokio::test]
async fn capturing_more_than_held_is_allowed_only_while_it_fits() {
    for backend in backends() {
        let clock = Arc::new(ManualClock::new(noon()));
        let store = store_at(backend, clock).await;
        let acme = tenant(&store, "UTC").await;
        let budget = acme
            .budgets()
            .create(NewBudget::tenant().monthly(dec("100"), "USD"))
            .await
            .unwrap();
        let r = acme.reservations();
        let later = noon() + Duration::hours(1);
        let a = held(
            &r.reserve(ReserveRequest::new(usd("50"), later))
                .await
                .unwrap(),
        );
        let b = held(
            &r.reserve(ReserveRequest::new(usd("40"), later))
                .await
                .unwrap(),
        );
        // 60 for a: 50 held + 10 extra fits (10 free).
        r.capture(a, usd("60")).await.unwrap();
        // 41 for b: 40 held + 1 extra does not fit (0 free). The settlement
        // is still posted, the extra 1 as overspend.
        let b = r.capture(b, usd("41")).await.unwrap();
        assert_eq!(b.captured_amount.get(), dec("41"), "{backend:?}");
        let balance = acme.budgets().status(budget.id).await.unwrap().balance;
        assert_eq!((balance.spent, balance.reserved), (dec("101"), dec("0")));
        let report = acme.reservations().reconcile().await.unwrap();
        assert_eq!(report.overspent.len(), 1);
        assert_eq!(report.overspent[0].1, dec("1"));
        assert_ledger_clean(&acme).await;
        // The window is over its limit: nothing more fits.
        let refused = r
            .reserve(ReserveRequest::new(usd("0.01"), later))
            .await
            .unwrap();
        assert_eq!(refused.shortfalls().len(), 1);
    }
}

#[tokio::test]
async fn refunds_reduce_spent_in_the_captured_window_and_repeat_safely() {
    for backend in backends() {
        let clock = Arc::new(ManualClock::new(noon()));
        let store = store_at(backend, clock.clone()).await;
        let acme = tenant(&store, "UTC").await;
        let budget = acme
            .budgets()
            .create(NewBudget::tenant().daily(dec("100"), "USD"))
            .await
            .unwrap();
        let r = acme.reservations();
        let id = held(
            &r.reserve(ReserveRequest::new(usd("40"), noon() + Duration::hours(1)))
                .await
                .unwrap(),
        );
        let err = r.refund(id, usd("1"), "rf-0").await.unwrap_err();
        assert!(
            err.to_string().contains("held"),
            "refund before capture names the state: {err}"
        );
        r.capture(id, usd("40")).await.unwrap();
        let first_window = acme.budgets().status(budget.id).await.unwrap().balance;
        assert_eq!(first_window.spent, dec("40"));

        // Next day: the refund goes to the window the money was captured in.
        clock.advance(Duration::days(1));
        r.refund(id, usd("15"), "rf-1").await.unwrap();
        r.refund(id, usd("15"), "rf-1").await.unwrap(); // repeated: no effect
        let today = acme.budgets().status(budget.id).await.unwrap().balance;
        assert_eq!(today.spent, dec("0"), "{backend:?}");
        let (res, _) = r.get(id).await.unwrap();
        assert_eq!(res.refunded_amount.get(), dec("15"));
        let err = r.refund(id, usd("25.01"), "rf-2").await.unwrap_err();
        assert!(
            matches!(err, Error::Invalid { ref field, .. } if field == "amount"),
            "{err:?}"
        );
        r.refund(id, usd("25"), "rf-2").await.unwrap();
        let report = r.reconcile().await.unwrap();
        assert!(report.is_clean(), "{report:#?}");
        assert_eq!(report.windows, 2);
        let (res, _) = r.get(id).await.unwrap();
        assert_eq!(res.refunded_amount.get(), dec("40"));
    }
}

#[tokio::test]
async fn a_hold_the_host_never_captures_is_expired_by_the_sweep() {
    for backend in backends() {
        let clock = Arc::new(ManualClock::new(noon()));
        let store = store_at(backend, clock.clone()).await;
        let acme = tenant(&store, "UTC").await;
        let budget = acme
            .budgets()
            .create(NewBudget::tenant().monthly(dec("100"), "USD"))
            .await
            .unwrap();
        let r = acme.reservations();
        let soon = held(
            &r.reserve(ReserveRequest::new(
                usd("70"),
                noon() + Duration::minutes(15),
            ))
            .await
            .unwrap(),
        );
        let _late = held(
            &r.reserve(ReserveRequest::new(usd("10"), noon() + Duration::hours(2)))
                .await
                .unwrap(),
        );
        assert_eq!(r.expire_due(noon()).await.unwrap(), 0);
        // The host crashed and never came back for `soon`.
        clock.advance(Duration::minutes(30));
        assert_eq!(
            r.expire_due(clock_now(&clock)).await.unwrap(),
            1,
            "{backend:?}"
        );
        assert_eq!(
            r.expire_due(clock_now(&clock)).await.unwrap(),
            0,
            "a second sweep finds nothing"
        );
        let (res, _) = r.get(soon).await.unwrap();
        assert_eq!(res.status, ReservationStatus::Expired);
        let expired = r
            .list(bursar::store::PageRequest::new().status("expired"))
            .await
            .unwrap();
        assert_eq!(
            expired.items.iter().map(|r| r.id).collect::<Vec<_>>(),
            [soon]
        );
        let held = r
            .list(bursar::store::PageRequest::new().status("held"))
            .await
            .unwrap();
        assert_eq!(held.items.len(), 1);
        let err = r
            .list(bursar::store::PageRequest::new().status("lost"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Invalid { ref field, .. } if field == "status"),
            "{err:?}"
        );
        assert_eq!(
            acme.budgets()
                .status(budget.id)
                .await
                .unwrap()
                .balance
                .reserved,
            dec("10")
        );
        // Settled after it expired: posted all the same.
        let late = r.capture(soon, usd("7")).await.unwrap();
        assert_eq!(late.status, ReservationStatus::Captured);
        assert_ledger_clean(&acme).await;
    }
}

fn clock_now(clock: &ManualClock) -> DateTime<Utc> {
    use bursar::clock::Clock;
    clock.now()
}

#[tokio::test]
async fn bad_input_and_unknown_ids_are_typed_errors() {
    let clock = Arc::new(ManualClock::new(noon()));
    let store = store_at(Backend::SqliteMemory, clock).await;
    let acme = tenant(&store, "UTC").await;
    let r = acme.reservations();
    let later = noon() + Duration::hours(1);
    for (amount, field) in [("0", "amount"), ("-5", "amount")] {
        let err = r
            .reserve(ReserveRequest::new(usd(amount), later))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Invalid { field: ref f, .. } if f == field),
            "{err:?}"
        );
        assert!(err.to_string().contains(amount), "{err}");
    }
    let err = r
        .reserve(ReserveRequest::new(usd("1"), noon()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Invalid { ref field, .. } if field == "expires_at"),
        "{err:?}"
    );
    let err = r
        .reserve(ReserveRequest::new(usd("1"), later).idempotency_key(""))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Invalid { ref field, .. } if field == "idempotency_key"),
        "{err:?}"
    );
    let missing = bursar::id::ReservationId::new();
    let err = r.capture(missing, usd("1")).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert!(matches!(
        r.release(missing).await.unwrap_err(),
        Error::NotFound { .. }
    ));
    // The same key for a different amount is a conflict, not a silent replay.
    r.reserve(ReserveRequest::new(usd("1"), later).idempotency_key("k"))
        .await
        .unwrap();
    let err = r
        .reserve(ReserveRequest::new(usd("2"), later).idempotency_key("k"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
}

#[tokio::test]
async fn ten_concurrent_retries_with_one_key_reserve_once() {
    let mut runs: Vec<(Backend, Option<String>)> = vec![(Backend::SqliteMemory, None)];
    let (_dir, file) = sqlite_file_url();
    runs.push((Backend::SqliteMemory, Some(file)));
    if postgres_url().is_some() {
        runs.push((Backend::Postgres, None));
    }
    for (backend, url) in runs {
        let clock = Arc::new(ManualClock::new(noon()));
        let store = match url {
            Some(url) => Store::builder(&url)
                .clock(clock.clone())
                .connect()
                .await
                .unwrap(),
            None => store_at(backend, clock.clone()).await,
        };
        let acme = tenant(&store, "UTC").await;
        let budget = acme
            .budgets()
            .create(NewBudget::tenant().monthly(dec("100"), "USD"))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let acme = acme.clone();
            tasks.push(tokio::spawn(async move {
                acme.reservations()
                    .reserve(
                        ReserveRequest::new(usd("7"), noon() + Duration::hours(1))
                            .idempotency_key("same"),
                    )
                    .await
            }));
        }
        let mut ids = Vec::new();
        let mut replays = 0;
        for t in tasks {
            let outcome = t.await.unwrap().unwrap();
            if let ReserveOutcome::Reserved { replayed, .. } = &outcome {
                replays += usize::from(*replayed);
            }
            ids.push(held(&outcome));
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "{backend:?}: one reservation");
        assert_eq!(replays, 9);
        assert_eq!(
            acme.budgets()
                .status(budget.id)
                .await
                .unwrap()
                .balance
                .reserved,
            dec("7")
        );
        assert_ledger_clean(&acme).await;
    }
}

/// 64 tasks each try 20 reservations of 1.00 against one budget of 500.00.
async fn hammer(acme: &TenantScope) -> usize {
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let acme = acme.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for _ in 0..20 {
                let outcome = acme
                    .reservations()
                    .reserve(ReserveRequest::new(
                        usd("1.00"),
                        noon() + Duration::hours(1),
                    ))
                    .await
                    .expect("reserve never errors under contention");
                ok += usize::from(outcome.reservation().is_some());
            }
            ok
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total
}

async fn assert_exactly_500_and_clean(acme: &TenantScope, budget: bursar::id::BudgetId) {
    let balance = acme.budgets().status(budget).await.unwrap().balance;
    assert_eq!(balance.reserved, dec("500"));
    assert!(balance.spent + balance.reserved <= balance.limit);
    assert_ledger_clean(acme).await;
}

/// With `group`, a builder with group commit on (in batches of 64 at most);
/// the stress tests below run both ways.
fn batching(builder: bursar::store::StoreBuilder, group: bool) -> bursar::store::StoreBuilder {
    if group {
        builder.group_commit(GroupCommit::new().max_batch(64))
    } else {
        builder
    }
}

/// With group commit on, the hammering really ran in shared transactions:
/// more requests than batches.
fn assert_batched(store: &Store, group: bool) {
    if let (true, Some(stats)) = (group, store.group_commit_stats()) {
        assert!(
            stats.requests > stats.batches,
            "concurrent reservations shared batches: {stats:?}"
        );
    }
    assert_eq!(store.group_commit_stats().is_some(), group);
}

async fn never_overspends_on_file_sqlite(group: bool) {
    let (_dir, url) = sqlite_file_url();
    let clock = Arc::new(ManualClock::new(noon()));
    let store = batching(Store::builder(&url).clock(clock), group)
        .connect()
        .await
        .unwrap();
    let acme = tenant(&store, "UTC").await;
    let budget = acme
        .budgets()
        .create(NewBudget::tenant().monthly(dec("500.00"), "USD"))
        .await
        .unwrap();
    assert_eq!(hammer(&acme).await, 500);
    assert_exactly_500_and_clean(&acme, budget.id).await;
    assert_batched(&store, group);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn never_overspends_under_64_concurrent_tasks_on_file_sqlite() {
    never_overspends_on_file_sqlite(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn never_overspends_under_64_concurrent_tasks_on_file_sqlite_with_group_commit() {
    never_overspends_on_file_sqlite(true).await;
}

async fn never_overspends_on_postgres(group: bool) {
    if postgres_url().is_none() {
        eprintln!("BURSAR_TEST_POSTGRES_URL is not set; skipping");
        return;
    }
    let clock = Arc::new(ManualClock::new(noon()));
    let store = batching(
        Store::builder(&fresh_postgres_schema().await)
            .clock(clock)
            .max_connections(16),
        group,
    )
    .connect()
    .await
    .unwrap();
    let acme = tenant(&store, "UTC").await;
    let budget = acme
        .budgets()
        .create(NewBudget::tenant().monthly(dec("500.00"), "USD"))
        .await
        .unwrap();
    assert_eq!(hammer(&acme).await, 500);
    assert_exactly_500_and_clean(&acme, budget.id).await;
    assert_batched(&store, group);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn never_overspends_under_64_concurrent_tasks_on_postgres() {
    never_overspends_on_postgres(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn never_overspends_under_64_concurrent_tasks_on_postgres_with_group_commit() {
    never_overspends_on_postgres(true).await;
}

/// Environment variables that turn this test binary into a worker process.
const WORKER_URL: &str = "BURSAR_RESERVATION_WORKER_URL";
const WORKER_TENANT: &str = "BURSAR_RESERVATION_WORKER_TENANT";
/// Set to `1` for a worker with group commit on.
const WORKER_GROUP_COMMIT: &str = "BURSAR_RESERVATION_WORKER_GROUP_COMMIT";

/// Run by `never_overspends_with_two_processes_on_postgres` in two child
/// processes; does nothing when run on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reservation_worker_process() {
    let (Ok(url), Ok(tenant_id)) = (std::env::var(WORKER_URL), std::env::var(WORKER_TENANT)) else {
        return;
    };
    let group = std::env::var(WORKER_GROUP_COMMIT).is_ok_and(|v| v == "1");
    let clock = Arc::new(ManualClock::new(noon()));
    let store = batching(
        Store::builder(&url)
            .clock(clock)
            .max_connections(8)
            .migrate(false),
        group,
    )
    .connect()
    .await
    .unwrap();
    let acme = store.tenant(tenant_id.parse().unwrap());
    let ok = hammer(&acme).await;
    if let Some(stats) = store.group_commit_stats() {
        println!(
            "\nWORKER_BATCHES={} WORKER_REQUESTS={}",
            stats.batches, stats.requests
        );
    }
    println!("\nWORKER_RESERVED={ok}");
}

async fn never_overspends_with_two_processes(group: bool) {
    if postgres_url().is_none() {
        eprintln!("BURSAR_TEST_POSTGRES_URL is not set; skipping");
        return;
    }
    let url = fresh_postgres_schema().await;
    let clock = Arc::new(ManualClock::new(noon()));
    let store = Store::builder(&url).clock(clock).connect().await.unwrap();
    let acme = tenant(&store, "UTC").await;
    let budget = acme
        .budgets()
        .create(NewBudget::tenant().monthly(dec("500.00"), "USD"))
        .await
        .unwrap();
    let exe = std::env::current_exe().unwrap();
    let spawn = || {
        std::process::Command::new(&exe)
            .args([
                "reservation_worker_process",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(WORKER_URL, &url)
            .env(WORKER_TENANT, acme.tenant_id().to_string())
            .env(WORKER_GROUP_COMMIT, if group { "1" } else { "0" })
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let mut total = 0;
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "worker failed: {stdout}");
        let n: usize = stdout
            .lines()
            .find_map(|l| l.split("WORKER_RESERVED=").nth(1))
            .unwrap_or_else(|| panic!("worker printed no count: {stdout}"))
            .trim()
            .parse()
            .unwrap();
        if group {
            let count = |name: &str| -> u64 {
                stdout
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix(name))
                    .unwrap_or_else(|| panic!("the worker ran with group commit: {stdout}"))
                    .parse()
                    .unwrap()
            };
            let (batches, requests) = (count("WORKER_BATCHES="), count("WORKER_REQUESTS="));
            assert!(
                requests > batches,
                "the worker's reservations shared batches: {requests} in {batches}"
            );
        }
        total += n;
    }
    // 2 processes × 64 tasks × 20 tries = 2,560 attempts for 500 units.
    assert_eq!(total, 500);
    assert_exactly_500_and_clean(&acme, budget.id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_overspends_with_two_processes_on_postgres() {
    never_overspends_with_two_processes(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_overspends_with_two_processes_on_postgres_with_group_commit() {
    never_overspends_with_two_processes(true).await;
}

#[tokio::test]
async fn late_evening_and_just_after_midnight_local_fall_in_different_daily_windows() {
    for backend in backends() {
        // 23:30 in New York on 2026-03-07 is 04:30 UTC on 2026-03-08; the next
        // local day (the 23-hour spring-forward day) starts at 05:00 UTC.
        let evening = Utc.with_ymd_and_hms(2026, 3, 8, 4, 30, 0).unwrap();
        let clock = Arc::new(ManualClock::new(evening));
        let store = store_at(backend, clock.clone()).await;
        let acme = tenant(&store, "America/New_York").await;
        let budget = acme
            .budgets()
            .create(NewBudget::tenant().daily(dec("100"), "USD"))
            .await
            .unwrap();
        let r = acme.reservations();
        let hold = |at: DateTime<Utc>| ReserveRequest::new(usd("80"), at + Duration::hours(1));
        assert!(
            r.reserve(hold(evening))
                .await
                .unwrap()
                .reservation()
                .is_some()
        );
        // 23:45 the same evening: the same window, which has 20 left.
        clock.set(evening + Duration::minutes(15));
        let same_day = r
            .reserve(hold(evening + Duration::minutes(15)))
            .await
            .unwrap();
        assert_eq!(same_day.shortfalls()[0].remaining, dec("20"), "{backend:?}");
        // 00:30 the next local day: a fresh window.
        let after_midnight = evening + Duration::hours(1);
        clock.set(after_midnight);
        assert!(
            r.reserve(hold(after_midnight))
                .await
                .unwrap()
                .reservation()
                .is_some(),
            "{backend:?}"
        );
        let today = acme.budgets().status(budget.id).await.unwrap().balance;
        assert_eq!(today.reserved, dec("80"));
        let report = r.reconcile().await.unwrap();
        assert!(report.is_clean());
        assert_eq!(report.windows, 2, "two daily windows were used");
    }
}
