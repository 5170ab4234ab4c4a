//! The baselines of `benches/authorize.rs` do what they claim: run against
//! bursar's own schema, the minimal one and the same-statements one hold on
//! every window of the hierarchy,
//! leaves each window's balance equal to its ledger sums and within its
//! limit, writes the reservation, its lines, the intent and an audit entry
//! that `audit_log().verify()` accepts as chained to bursar's own entries.
//! On in-memory SQLite through sqlx, on a SQLite file through rusqlite, and on
//! PostgreSQL when `BURSAR_TEST_POSTGRES_URL` is set.

#[path = "../benches/common/minimal.rs"]
mod minimal;
#[path = "../benches/common/periods.rs"]
mod periods;
#[path = "../benches/common/same_statements.rs"]
mod same_statements;
#[path = "../benches/common/authorize_setup.rs"]
mod setup;

use bursar::audit::AuditLogRepository as _;
use bursar::entity::{
    audit_log, budget_window, merchant, purchase_intent, reservation, reservation_line,
};
use bursar::money::Amount;
use bursar::store::ReservationRepository as _;
use rust_decimal::Decimal;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use setup::{AMOUNT, Backend, Database, MERCHANT, Tenant};

/// Calls of the baseline per backend.
const CALLS: usize = 3;

fn target(tenant: &Tenant) -> minimal::Target {
    minimal::Target {
        tenant: tenant.id().as_uuid(),
        agent: tenant.agent.as_uuid(),
        team: tenant.team.as_uuid(),
        now: setup::now(),
        amount: Amount::new(Decimal::from(AMOUNT)).expect("an amount"),
        merchant: MERCHANT.to_owned(),
    }
}

/// After one bursar call (which creates the windows) and [`CALLS`] baseline
/// calls: three windows each holding `(1 + CALLS) × AMOUNT`, reconciled with
/// the ledger; the baseline's rows present; the audit chain intact.
async fn assert_consistent(store: &bursar::Store, tenant: &Tenant) {
    let db = store.connection();
    let tenant_id = tenant.id();
    let report = tenant
        .scope
        .reservations()
        .reconcile()
        .await
        .expect("reconcile");
    assert!(report.is_clean(), "{report:#?}");
    let windows = budget_window::Entity::find()
        .filter(budget_window::Column::TenantId.eq(tenant_id))
        .all(db)
        .await
        .expect("windows");
    assert_eq!(
        windows.len(),
        3,
        "agent daily, team monthly, tenant monthly"
    );
    let held = Decimal::from(AMOUNT * (1 + CALLS as i64));
    for w in &windows {
        assert_eq!(w.reserved.get(), held, "window {}", w.id);
        assert!(w.spent.get() + w.reserved.get() <= w.limit_amount.get());
    }
    let count = |n: u64, what: &str, want: usize| assert_eq!(n, want as u64, "{what}");
    count(
        reservation::Entity::find()
            .filter(reservation::Column::TenantId.eq(tenant_id))
            .count(db)
            .await
            .expect("reservations"),
        "reservations",
        1 + CALLS,
    );
    count(
        reservation_line::Entity::find()
            .filter(reservation_line::Column::TenantId.eq(tenant_id))
            .count(db)
            .await
            .expect("lines"),
        "reservation lines",
        3 * (1 + CALLS),
    );
    let intents = purchase_intent::Entity::find()
        .filter(purchase_intent::Column::TenantId.eq(tenant_id))
        .all(db)
        .await
        .expect("intents");
    assert_eq!(intents.len(), 1 + CALLS);
    for intent in &intents {
        assert_eq!(
            intent.status,
            purchase_intent::PurchaseIntentStatus::Approved
        );
        assert!(intent.reservation_id.is_some(), "intent {}", intent.id);
    }
    count(
        audit_log::Entity::find()
            .filter(audit_log::Column::TenantId.eq(tenant_id))
            .filter(audit_log::Column::Action.eq(minimal::ACTION))
            .count(db)
            .await
            .expect("audit entries"),
        "approved-purchase audit entries",
        1 + CALLS,
    );
    // The merchant bursar recorded first, found again under the same
    // normalized name.
    count(
        merchant::Entity::find()
            .filter(merchant::Column::TenantId.eq(tenant_id))
            .count(db)
            .await
            .expect("merchants"),
        "merchants",
        1,
    );
    let chain = tenant.scope.audit_log().verify().await.expect("verify");
    assert_eq!(chain.first_broken_seq, None, "{chain:?}");
    assert!(chain.entries > CALLS as u64);
}

#[tokio::test]
async fn the_sqlx_sqlite_baseline_keeps_the_ledger_and_the_chain() {
    let db = Database::open(Backend::SqliteMemory).await.expect("sqlite");
    let tenant = Tenant::create(&db.store).await;
    tenant.authorize().await;
    let pool = db.store.connection().get_sqlite_connection_pool().clone();
    let sql = minimal::sqlite_sql::Sql::new();
    let t = target(&tenant);
    for _ in 0..CALLS {
        let windows = minimal::sqlite::authorize(&pool, &sql, &t)
            .await
            .expect("baseline");
        assert_eq!(windows, 3);
    }
    assert_consistent(&db.store, &tenant).await;
    db.close().await;
}

#[tokio::test]
async fn the_rusqlite_baseline_keeps_the_ledger_and_the_chain() {
    let db = Database::open(Backend::SqliteFile)
        .await
        .expect("sqlite file");
    let tenant = Tenant::create(&db.store).await;
    tenant.authorize().await;
    let path = db.file.clone().expect("a file");
    let sql = minimal::sqlite_sql::Sql::new();
    let t = target(&tenant);
    {
        let conn = minimal::rusqlite_engine::open_file(&path).expect("open");
        for _ in 0..CALLS {
            let windows = minimal::rusqlite_engine::authorize(&conn, &sql, &t).expect("baseline");
            assert_eq!(windows, 3);
        }
    }
    assert_consistent(&db.store, &tenant).await;
    db.close().await;
}

#[tokio::test]
async fn the_baseline_refuses_what_does_not_fit_and_writes_nothing() {
    let db = Database::open(Backend::SqliteMemory).await.expect("sqlite");
    let tenant = Tenant::create(&db.store).await;
    tenant.authorize().await;
    let pool = db.store.connection().get_sqlite_connection_pool().clone();
    let sql = minimal::sqlite_sql::Sql::new();
    let mut t = target(&tenant);
    t.amount = Amount::new(Decimal::from(setup::LIMIT)).expect("an amount");
    let err = minimal::sqlite::authorize(&pool, &sql, &t)
        .await
        .expect_err("more than the limit");
    assert!(err.to_string().contains("nothing held"), "{err}");
    let intents = purchase_intent::Entity::find()
        .filter(purchase_intent::Column::TenantId.eq(tenant.id()))
        .count(db.store.connection())
        .await
        .expect("intents");
    assert_eq!(intents, 1, "only bursar's");
    let report = tenant
        .scope
        .reservations()
        .reconcile()
        .await
        .expect("reconcile");
    assert!(report.is_clean(), "{report:#?}");
    db.close().await;
}

#[tokio::test]
async fn the_postgres_baseline_keeps_the_ledger_and_the_chain() {
    let Some(db) = Database::open(Backend::Postgres).await else {
        eprintln!("skipped: BURSAR_TEST_POSTGRES_URL is not set");
        return;
    };
    let tenant = Tenant::create(&db.store).await;
    tenant.authorize().await;
    let pool = db.store.connection().get_postgres_connection_pool().clone();
    let t = target(&tenant);
    let begin = minimal::postgres::begin(t.tenant);
    for _ in 0..CALLS {
        let windows = minimal::postgres::authorize(&pool, &begin, &t)
            .await
            .expect("baseline");
        assert_eq!(windows, 3);
    }
    assert_consistent(&db.store, &tenant).await;
    db.close().await;
}

#[tokio::test]
async fn the_same_statements_baseline_keeps_the_ledger_and_the_chain() {
    let db = Database::open(Backend::SqliteMemory).await.expect("sqlite");
    let tenant = Tenant::create(&db.store).await;
    tenant.authorize().await;
    let pool = db.store.connection().get_sqlite_connection_pool().clone();
    let sql = same_statements::Sql::new(false);
    let t = target(&tenant);
    for _ in 0..CALLS {
        let windows = same_statements::sqlite::authorize(&pool, &sql, &t)
            .await
            .expect("baseline");
        assert_eq!(windows, 3);
    }
    assert_consistent(&db.store, &tenant).await;
    db.close().await;
    let Some(db) = Database::open(Backend::Postgres).await else {
        eprintln!("PostgreSQL skipped: BURSAR_TEST_POSTGRES_URL is not set");
        return;
    };
    let tenant = Tenant::create(&db.store).await;
    tenant.authorize().await;
    let pool = db.store.connection().get_postgres_connection_pool().clone();
    let sql = same_statements::Sql::new(true);
    let t = target(&tenant);
    for _ in 0..CALLS {
        let windows = same_statements::postgres::authorize(&pool, &sql, &t)
            .await
            .expect("baseline");
        assert_eq!(windows, 3);
    }
    assert_consistent(&db.store, &tenant).await;
    db.close().await;
}
