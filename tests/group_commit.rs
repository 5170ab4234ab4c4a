//! Group commit: one tenant's concurrent requests in one process share one
//! transaction, and each still gets exactly its own result.
//!
//! The overspend stress tests of `tests/reservations.rs` also run with group
//! commit on (`…_with_group_commit`).

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bursar::authorize::{Authorization, AuthorizeHook};
use bursar::clock::ManualClock;
use bursar::codes;
use bursar::entity::purchase_intent;
use bursar::id::{AgentId, TenantId};
use bursar::money::Currency;
use bursar::policy::{Outcome, Request};
use bursar::store::{BudgetRepository, GroupCommit, GroupCommitStats, ReservationRepository};
use bursar::{Error, Store, TenantScope};
use chrono::{DateTime, TimeZone, Utc};
use common::{FailingHook, dec, fresh_postgres_schema, postgres_url, sqlite_file_url};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
};
use tokio::sync::Notify;

fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 15, 16, 0, 0).unwrap()
}

/// Where a test body runs: in-memory and file SQLite always, PostgreSQL when
/// `BURSAR_TEST_POSTGRES_URL` is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Db {
    Memory,
    File,
    Postgres,
}

fn databases() -> Vec<Db> {
    let mut all = vec![Db::Memory, Db::File];
    if postgres_url().is_some() {
        all.push(Db::Postgres);
    }
    all
}

/// A store on `db` with `group`, and the temporary directory of a file
/// database (kept alive with the store).
async fn store_on(
    db: Db,
    group: GroupCommit,
    tune: impl FnOnce(bursar::store::StoreBuilder) -> bursar::store::StoreBuilder,
) -> (Store, Option<tempfile::TempDir>) {
    let (dir, url) = match db {
        Db::Memory => (None, "sqlite::memory:".to_owned()),
        Db::File => {
            let (dir, url) = sqlite_file_url();
            (Some(dir), url)
        }
        Db::Postgres => (None, fresh_postgres_schema().await),
    };
    let builder = Store::builder(&url)
        .clock(Arc::new(ManualClock::new(noon())))
        .group_commit(group);
    (tune(builder).connect().await.unwrap(), dir)
}

/// A tenant with one agent: per transaction 200, monthly 100, blocked
/// "facebook ads".
async fn setup(store: &Store) -> (TenantScope, AgentId) {
    common::tenant_under_controls(store, |c| {
        c.per_transaction_limit(dec("200"))
            .monthly_limit(dec("100"))
            .blocked_merchants(["facebook ads"])
    })
    .await
}

fn buy(agent: AgentId, amount: &str, key: &str) -> Request {
    Request::purchase(agent, dec(amount), Currency::USD, "GitHub").idempotency_key(key)
}

fn stats(store: &Store) -> GroupCommitStats {
    store.group_commit_stats().expect("group commit is on")
}

/// The intents recorded under `key` in `tenant`.
async fn intents_with_key(store: &Store, tenant: TenantId, key: &str) -> u64 {
    purchase_intent::Entity::find()
        .filter(purchase_intent::Column::TenantId.eq(tenant))
        .filter(purchase_intent::Column::IdempotencyKey.eq(key))
        .count(store.connection())
        .await
        .unwrap()
}

async fn intents(store: &Store, tenant: TenantId) -> u64 {
    purchase_intent::Entity::find()
        .filter(purchase_intent::Column::TenantId.eq(tenant))
        .count(store.connection())
        .await
        .unwrap()
}

async fn assert_clean(acme: &TenantScope) {
    let report = acme.reservations().reconcile().await.unwrap();
    assert!(report.is_clean(), "ledger differs: {report:#?}");
}

#[tokio::test]
async fn one_batch_gives_a_replay_a_rejection_a_hook_failure_and_an_approval_each_its_own_result() {
    for db in databases() {
        // Four at most, and open long enough for all four: they land in one
        // batch, which commits as soon as the fourth has run.
        let group = GroupCommit::new()
            .max_batch(4)
            .max_wait(Duration::from_secs(1));
        let (store, _dir) = store_on(db, group, |b| b).await;
        let (acme, agent) = setup(&store).await;
        let first = acme.authorize(buy(agent, "30", "k-replay")).await.unwrap();
        assert!(first.is_approved(), "{db:?}");
        let before = stats(&store);

        // `join!` polls the four in order on this task, and each joins the
        // batch on its first poll: arrival order is the order written here.
        let (replay, rejected, hooked, approved) = tokio::join!(
            acme.authorize(buy(agent, "30", "k-replay")),
            acme.authorize(buy(agent, "250", "k-over")),
            acme.authorize_with(buy(agent, "20", "k-hook"), &FailingHook),
            acme.authorize(buy(agent, "40", "k-ok")),
        );

        let replay = replay.unwrap();
        assert!(replay.replayed, "{db:?}");
        assert_eq!(replay.intent.id, first.intent.id, "{db:?}");
        let rejected = rejected.unwrap();
        assert_eq!(rejected.outcome, Outcome::Rejected, "{db:?}");
        assert!(
            rejected.codes().any(|c| c == codes::OVER_TRANSACTION_LIMIT),
            "{db:?}: {:?}",
            rejected.reasons
        );
        let err = hooked.unwrap_err();
        assert!(err.to_string().contains("card provider is down"), "{err}");
        let approved = approved.unwrap();
        assert!(approved.is_approved(), "{db:?}: {approved:?}");
        assert!(!approved.replayed);

        // They shared one transaction: one batch, four requests.
        let after = stats(&store);
        assert_eq!(after.batches - before.batches, 1, "{db:?}");
        assert_eq!(after.requests - before.requests, 4, "{db:?}");
        assert_eq!(after.failed, before.failed, "{db:?}");

        // What each wrote: the rejection is recorded, the hook's request is
        // not, the replay wrote nothing.
        let tenant = acme.tenant_id();
        assert_eq!(intents_with_key(&store, tenant, "k-replay").await, 1);
        assert_eq!(intents_with_key(&store, tenant, "k-over").await, 1);
        assert_eq!(intents_with_key(&store, tenant, "k-hook").await, 0);
        assert_eq!(intents_with_key(&store, tenant, "k-ok").await, 1);
        assert_clean(&acme).await;
    }
}

#[tokio::test]
async fn a_batch_applies_its_requests_in_arrival_order_against_the_running_balance() {
    for db in databases() {
        let group = GroupCommit::new()
            .max_batch(3)
            .max_wait(Duration::from_secs(1));
        let (store, _dir) = store_on(db, group, |b| b).await;
        let (acme, agent) = setup(&store).await;
        let before = stats(&store);
        // 40 + 40 fit the monthly 100; the third 40 does not.
        let (a, b, c) = tokio::join!(
            acme.authorize(buy(agent, "40", "a")),
            acme.authorize(buy(agent, "40", "b")),
            acme.authorize(buy(agent, "40", "c")),
        );
        assert!(a.unwrap().is_approved(), "{db:?}");
        assert!(b.unwrap().is_approved(), "{db:?}");
        let c = c.unwrap();
        assert_eq!(c.outcome, Outcome::Rejected, "{db:?}");
        assert_eq!(
            c.codes().collect::<Vec<_>>(),
            [codes::MONTHLY_LIMIT_EXCEEDED],
            "{db:?}"
        );
        let after = stats(&store);
        assert_eq!(
            (
                after.batches - before.batches,
                after.requests - before.requests
            ),
            (1, 3),
            "{db:?}"
        );
        assert_clean(&acme).await;
    }
}

/// A hook that says it was reached, then waits to be let go.
struct Gate {
    reached: Notify,
    open: Notify,
}

impl Gate {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            reached: Notify::new(),
            open: Notify::new(),
        })
    }
}

#[async_trait]
impl AuthorizeHook for Gate {
    async fn before_commit(
        &self,
        _: &Authorization,
        _: &DatabaseTransaction,
    ) -> bursar::Result<()> {
        self.reached.notify_one();
        self.open.notified().await;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_dropped_before_its_turn_never_runs_and_its_retry_reserves_once() {
    for db in databases() {
        let (store, _dir) = store_on(db, GroupCommit::new(), |b| b).await;
        let (acme, agent) = setup(&store).await;
        // The first caller holds the batch's turn in its hook.
        let gate = Gate::new();
        let holder = {
            let (acme, gate) = (acme.clone(), Arc::clone(&gate));
            tokio::spawn(async move { acme.authorize_with(buy(agent, "10", "a"), &*gate).await })
        };
        gate.reached.notified().await;
        // The second joins the batch and waits for its turn; its caller
        // gives up.
        let gave_up = tokio::time::timeout(
            Duration::from_millis(100),
            acme.authorize(buy(agent, "20", "b")),
        )
        .await;
        assert!(gave_up.is_err(), "{db:?}: it waited behind the first");
        gate.open.notify_one();
        assert!(holder.await.unwrap().unwrap().is_approved(), "{db:?}");

        let tenant = acme.tenant_id();
        assert_eq!(intents_with_key(&store, tenant, "b").await, 0, "{db:?}");
        assert_clean(&acme).await;
        // Retried with its key, it reserves once; again, it is a replay.
        let retried = acme.authorize(buy(agent, "20", "b")).await.unwrap();
        assert!(retried.is_approved() && !retried.replayed, "{db:?}");
        let again = acme.authorize(buy(agent, "20", "b")).await.unwrap();
        assert!(again.replayed, "{db:?}");
        assert_eq!(intents_with_key(&store, tenant, "b").await, 1, "{db:?}");
        assert_eq!(held(&acme).await, dec("30"), "{db:?}");
        assert_clean(&acme).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_dropped_after_its_turn_is_committed_with_the_batch_and_replayed_on_retry() {
    for db in databases() {
        // The batch stays open for a second after it opened, so its caller
        // waits for the commit well after its own turn.
        let group = GroupCommit::new().max_wait(Duration::from_secs(1));
        let (store, _dir) = store_on(db, group, |b| b).await;
        let (acme, agent) = setup(&store).await;
        let before = stats(&store);
        let gave_up = tokio::time::timeout(
            Duration::from_millis(400),
            acme.authorize(buy(agent, "20", "b")),
        )
        .await;
        assert!(gave_up.is_err(), "{db:?}: it waited for the commit");
        // The batch ends without the caller that left.
        while stats(&store).batches == before.batches {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let tenant = acme.tenant_id();
        let found = intents_with_key(&store, tenant, "b").await;
        // Its turn ran within the 400 ms, so it was committed; absent would
        // be consistent too, twice never.
        assert_eq!(found, 1, "{db:?}");
        assert_clean(&acme).await;
        let retried = acme.authorize(buy(agent, "20", "b")).await.unwrap();
        assert!(retried.replayed && retried.is_approved(), "{db:?}");
        assert_eq!(intents_with_key(&store, tenant, "b").await, 1, "{db:?}");
        assert_clean(&acme).await;
    }
}

/// Makes the database fail midway through a batch, from the first request's
/// hook, which itself succeeds: the failure then hits the next request's
/// statements in the database, where no hook is involved.
///
/// * SQLite: `PRAGMA query_only = ON` on the batch's connection, standing in
///   for a database that starts refusing writes (a read-only remount, a
///   revoked permission): the next write fails with `SQLITE_READONLY`.
/// * PostgreSQL: another session terminates the batch's backend
///   (`pg_terminate_backend`, waiting until it is gone), as a server restart
///   or a network cut would: the next statement finds the connection closed.
struct BreakTheDatabase {
    postgres_admin: Option<String>,
}

#[async_trait]
impl AuthorizeHook for BreakTheDatabase {
    async fn before_commit(
        &self,
        _: &Authorization,
        txn: &DatabaseTransaction,
    ) -> bursar::Result<()> {
        match &self.postgres_admin {
            None => {
                txn.execute_unprepared("PRAGMA query_only = ON").await?;
            }
            Some(url) => {
                let row = txn
                    .query_one_raw(sea_orm::Statement::from_string(
                        sea_orm::DbBackend::Postgres,
                        "SELECT pg_backend_pid() AS pid",
                    ))
                    .await?
                    .expect("one row");
                let pid: i32 = row.try_get("", "pid")?;
                let admin = sea_orm::Database::connect(url.as_str()).await?;
                admin
                    .execute_unprepared(&format!("SELECT pg_terminate_backend({pid}, 5000)"))
                    .await?;
                admin.close().await?;
            }
        }
        Ok(())
    }
}

/// The largest amount held on any of the tenant's budgets.
async fn held(acme: &TenantScope) -> rust_decimal::Decimal {
    let mut held = dec("0");
    for budget in acme.budgets().list().await.unwrap() {
        let balance = acme.budgets().status(budget.id).await.unwrap().balance;
        held = held.max(balance.reserved);
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_dropped_during_its_turn_is_undone_and_the_batch_goes_on() {
    for db in databases() {
        // The dropped request is the batch's first (it runs without a
        // savepoint), then a later one (inside a savepoint).
        for first in [true, false] {
            let group = GroupCommit::new().max_wait(Duration::from_millis(500));
            let (store, _dir) = store_on(db, group, |b| b).await;
            let (acme, agent) = setup(&store).await;
            let before = stats(&store);
            let earlier = if first {
                None
            } else {
                let acme = acme.clone();
                let a = tokio::spawn(async move { acme.authorize(buy(agent, "10", "a")).await });
                // Its turn is over once its intent can be replayed in-batch;
                // give it the head of the line.
                tokio::time::sleep(Duration::from_millis(50)).await;
                Some(a)
            };
            // This caller gives up while its hook holds the turn, mid-request.
            let gate = Gate::new();
            let gave_up = tokio::time::timeout(
                Duration::from_millis(150),
                acme.authorize_with(buy(agent, "20", "b"), &*gate),
            )
            .await;
            assert!(gave_up.is_err(), "{db:?} first={first}: it was stopped");
            // A later request of the same batch runs and commits.
            let later = acme.authorize(buy(agent, "30", "c")).await.unwrap();
            assert!(
                later.is_approved() && !later.replayed,
                "{db:?} first={first}"
            );
            if let Some(a) = earlier {
                assert!(a.await.unwrap().unwrap().is_approved(), "{db:?}");
            }
            // The batch is counted just after its callers are answered.
            while stats(&store).batches == before.batches {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let after = stats(&store);
            // One batch, which committed the requests that ran to an end
            // (not the dropped one).
            let ran = if first { 1 } else { 2 };
            assert_eq!(
                (
                    after.batches - before.batches,
                    after.requests - before.requests
                ),
                (1, ran),
                "{db:?} first={first}: one batch"
            );
            assert_eq!(after.failed, before.failed, "{db:?} first={first}");

            let tenant = acme.tenant_id();
            assert_eq!(
                intents_with_key(&store, tenant, "b").await,
                0,
                "{db:?} first={first}"
            );
            assert_eq!(
                intents_with_key(&store, tenant, "c").await,
                1,
                "{db:?} first={first}"
            );
            let expected = if first { dec("30") } else { dec("40") };
            assert_eq!(held(&acme).await, expected, "{db:?} first={first}");
            assert_clean(&acme).await;
        }
    }
}

#[tokio::test]
async fn a_database_failure_midway_fails_every_caller_of_the_batch_and_writes_nothing() {
    for db in databases() {
        let group = GroupCommit::new()
            .max_batch(3)
            .max_wait(Duration::from_secs(1));
        // One connection on SQLite, so the read-only switch can be undone
        // afterwards on the same connection.
        let (store, _dir) = store_on(db, group, |b| {
            if db == Db::Postgres {
                b
            } else {
                b.max_connections(1)
            }
        })
        .await;
        let (acme, agent) = setup(&store).await;
        let tenant = acme.tenant_id();
        let breaker = BreakTheDatabase {
            postgres_admin: (db == Db::Postgres).then(|| postgres_url().unwrap()),
        };
        let before = stats(&store);
        let (a, b, c) = tokio::join!(
            acme.authorize_with(buy(agent, "10", "a"), &breaker),
            acme.authorize(buy(agent, "10", "b")),
            acme.authorize(buy(agent, "10", "c")),
        );
        let errors = [a.unwrap_err(), b.unwrap_err(), c.unwrap_err()];
        let expected = if db == Db::Postgres {
            "unavailable"
        } else {
            "database"
        };
        for err in &errors {
            assert_eq!(err.code(), expected, "{db:?}: {err:?}");
            assert_eq!(err.to_string(), errors[0].to_string(), "{db:?}");
        }
        let after = stats(&store);
        assert_eq!(
            (after.batches - before.batches, after.failed - before.failed),
            (1, 1),
            "{db:?}"
        );
        if db != Db::Postgres {
            store
                .connection()
                .execute_unprepared("PRAGMA query_only = OFF")
                .await
                .unwrap();
        }
        // Nothing was written, not even the first request's work.
        assert_eq!(intents(&store, tenant).await, 0, "{db:?}");
        assert_clean(&acme).await;
        // The same requests go through once the database is back.
        for key in ["a", "b", "c"] {
            assert!(
                acme.authorize(buy(agent, "10", key))
                    .await
                    .unwrap()
                    .is_approved()
            );
        }
        assert_eq!(intents(&store, tenant).await, 3, "{db:?}");
        assert_clean(&acme).await;
    }
}

#[tokio::test]
async fn group_commit_out_of_bounds_is_refused_naming_the_field() {
    for (config, field, value) in [
        (
            GroupCommit::new().max_batch(0),
            "group_commit.max_batch",
            "got 0",
        ),
        (
            GroupCommit::new().max_batch(bursar::store::MAX_GROUP_COMMIT_BATCH + 1),
            "group_commit.max_batch",
            "got 1025",
        ),
        (
            GroupCommit::new().max_wait(Duration::from_secs(2)),
            "group_commit.max_wait",
            "got 2000 ms",
        ),
    ] {
        let err = Store::builder("sqlite::memory:")
            .group_commit(config)
            .connect()
            .await
            .unwrap_err();
        match &err {
            Error::Invalid { field: f, reason } => {
                assert_eq!(f, field);
                assert!(reason.contains(value), "{reason}");
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }
    let ok = GroupCommit::new()
        .max_batch(1)
        .max_wait(Duration::from_millis(5));
    let store = Store::builder("sqlite::memory:")
        .group_commit(ok)
        .connect()
        .await
        .unwrap();
    assert_eq!(store.group_commit(), Some(ok));
    assert_eq!(stats(&store), GroupCommitStats::default());
    assert!(
        Store::connect("sqlite::memory:")
            .await
            .unwrap()
            .group_commit()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_concurrent_callers_in_batches_of_four_are_each_approved_once() {
    for db in databases() {
        let (store, _dir) = store_on(db, GroupCommit::new().max_batch(4), |b| {
            b.max_connections(8)
        })
        .await;
        let (acme, agent) = setup(&store).await;
        // 32 concurrent callers of 1.00 against the monthly 100 (4 per batch
        // at most): every one approved, none twice.
        let mut tasks = Vec::new();
        for n in 0..32 {
            let acme = acme.clone();
            tasks.push(tokio::spawn(async move {
                acme.authorize(buy(agent, "1", &format!("k{n}"))).await
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap().unwrap().is_approved(), "{db:?}");
        }
        let s = stats(&store);
        assert!(s.requests >= 32 && s.batches >= 8, "{db:?}: {s:?}");
        assert_eq!(intents(&store, acme.tenant_id()).await, 32, "{db:?}");
        assert_clean(&acme).await;
    }
}
