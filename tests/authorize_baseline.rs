//! The baselines of `benches/authorize.rs` do what they claim: run against
//! bursar's own schema, the minimal one and the same-statements one hold on
//! every window of the hierarchy, leave each window's balance equal to its
//! ledger sums and within its limit, write the reservation, its lines, the
//! intent and an audit entry that `audit_log().verify()` accepts as chained
//! to bursar's own entries. On in-memory SQLite through sqlx, on a SQLite file
//! through rusqlite, and on PostgreSQL when `BURSAR_TEST_POSTGRES_URL` is set.

#[path = "../benches/common/minimal.rs"]
mod minimal;
#[path = "../benches/common/periods.rs"]
mod periods;
#[path = "../benches/common/same_statements.rs"]
mod same_statements;
#[path = "../benches/common/authorize_setup.rs"]
mod setup;
#[path = "../benches/common/sql_text.rs"]
mod sql_text;

use bursar::entity::{
    audit_log, budget_window, merchant, purchase_intent, reservation, reservation_line,
};
use bursar::money::Amount;
use rust_decimal::Decimal;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use setup::{AMOUNT, Backend, Database, Tenant};

/// Calls of a baseline per backend.
const CALLS: usize = 3;

/// Which baseline a test runs.
#[derive(Clone, Copy)]
enum Baseline {
    Minimal,
    SameStatements,
}

/// A fresh database on `backend` with a tenant that bursar has authorized
/// for once (which creates the windows); `None` for PostgreSQL when it is
/// not configured.
async fn fixture(backend: Backend) -> Option<(Database, Tenant)> {
    let db = Database::open(backend).await?;
    let tenant = Tenant::create(&db.store).await;
    tenant.authorize().await;
    Some((db, tenant))
}

/// [`CALLS`] calls of `baseline` through the store's own pool; each must
/// hold on the three windows.
async fn run(db: &Database, tenant: &Tenant, baseline: Baseline) {
    let t = tenant.target();
    let conn = db.store.connection();
    let postgres = db.store.backend() == bursar::store::Backend::Postgres;
    let minimal_sql = minimal::sqlite_sql::Sql::new();
    let same_sql = same_statements::Sql::new(postgres);
    let begin = minimal::postgres::begin(t.tenant);
    for _ in 0..CALLS {
        let windows = match (baseline, postgres) {
            (Baseline::Minimal, true) => {
                minimal::postgres::authorize(conn.get_postgres_connection_pool(), &begin, &t).await
            }
            (Baseline::Minimal, false) => {
                minimal::sqlite::authorize(conn.get_sqlite_connection_pool(), &minimal_sql, &t)
                    .await
            }
            (Baseline::SameStatements, true) => {
                same_statements::postgres::authorize(
                    conn.get_postgres_connection_pool(),
                    &same_sql,
                    &t,
                )
                .await
            }
            (Baseline::SameStatements, false) => {
                same_statements::sqlite::authorize(conn.get_sqlite_connection_pool(), &same_sql, &t)
                    .await
            }
        }
        .expect("the baseline authorizes");
        assert_eq!(windows, 3);
    }
}

/// After one bursar call and [`CALLS`] baseline calls: three windows each
/// holding `(1 + CALLS) × AMOUNT`, reconciled with the ledger; the
/// baseline's rows present; the merchant bursar recorded found again; the
/// audit chain intact.
async fn assert_consistent(store: &bursar::Store, tenant: &Tenant) {
    let db = store.connection();
    let tenant_id = tenant.id();
    tenant.assert_consistent("baseline").await;
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
    let counts = [
        (
            "reservations",
            reservation::Entity::find()
                .filter(reservation::Column::TenantId.eq(tenant_id))
                .count(db)
                .await,
            1 + CALLS,
        ),
        (
            "reservation lines",
            reservation_line::Entity::find()
                .filter(reservation_line::Column::TenantId.eq(tenant_id))
                .count(db)
                .await,
            3 * (1 + CALLS),
        ),
        (
            "approved-purchase audit entries",
            audit_log::Entity::find()
                .filter(audit_log::Column::TenantId.eq(tenant_id))
                .filter(audit_log::Column::Action.eq(minimal::ACTION))
                .count(db)
                .await,
            1 + CALLS,
        ),
        (
            "merchants",
            merchant::Entity::find()
                .filter(merchant::Column::TenantId.eq(tenant_id))
                .count(db)
                .await,
            1,
        ),
    ];
    for (what, n, want) in counts {
        assert_eq!(n.expect(what), want as u64, "{what}");
    }
}

#[tokio::test]
async fn the_minimal_baseline_keeps_the_ledger_and_the_chain() {
    for backend in [Backend::SqliteMemory, Backend::Postgres] {
        let Some((db, tenant)) = fixture(backend).await else {
            eprintln!("PostgreSQL skipped: BURSAR_TEST_POSTGRES_URL is not set");
            continue;
        };
        run(&db, &tenant, Baseline::Minimal).await;
        assert_consistent(&db.store, &tenant).await;
        db.close().await;
    }
}

#[tokio::test]
async fn the_same_statements_baseline_keeps_the_ledger_and_the_chain() {
    for backend in [Backend::SqliteMemory, Backend::Postgres] {
        let Some((db, tenant)) = fixture(backend).await else {
            eprintln!("PostgreSQL skipped: BURSAR_TEST_POSTGRES_URL is not set");
            continue;
        };
        run(&db, &tenant, Baseline::SameStatements).await;
        assert_consistent(&db.store, &tenant).await;
        db.close().await;
    }
}

#[tokio::test]
async fn the_rusqlite_baseline_keeps_the_ledger_and_the_chain() {
    let (db, tenant) = fixture(Backend::SqliteFile).await.expect("sqlite file");
    let path = db.file.clone().expect("a file");
    let sql = minimal::sqlite_sql::Sql::new();
    let t = tenant.target();
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
async fn the_minimal_baseline_refuses_what_does_not_fit_and_writes_nothing() {
    for backend in [Backend::SqliteMemory, Backend::Postgres] {
        let Some((db, tenant)) = fixture(backend).await else {
            continue;
        };
        let mut t = tenant.target();
        t.amount = Amount::new(Decimal::from(setup::LIMIT)).expect("an amount");
        let conn = db.store.connection();
        let refused = match backend {
            Backend::Postgres => {
                let begin = minimal::postgres::begin(t.tenant);
                minimal::postgres::authorize(conn.get_postgres_connection_pool(), &begin, &t).await
            }
            _ => {
                let sql = minimal::sqlite_sql::Sql::new();
                minimal::sqlite::authorize(conn.get_sqlite_connection_pool(), &sql, &t).await
            }
        };
        let err = refused.expect_err("more than the limit");
        assert!(err.to_string().contains("nothing held"), "{err}");
        let intents = purchase_intent::Entity::find()
            .filter(purchase_intent::Column::TenantId.eq(tenant.id()))
            .count(conn)
            .await
            .expect("intents");
        assert_eq!(intents, 1, "only bursar's");
        tenant.assert_consistent("after a refusal").await;
        db.close().await;
    }
}
