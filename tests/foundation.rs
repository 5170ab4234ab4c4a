//! The schema, the store and exact money, on every configured backend.

mod common;

use bursar::entity::budget;
use bursar::money::{Amount, Currency, Money, MoneyError};
use bursar::store::{BudgetRepository, NewBudget, NewTenant, TenantRepository};
use bursar::{Error, Store};
use bursar_migration::{Migrator, MigratorTrait, TABLES};
use common::{Backend, backends, dec, fresh, fresh_postgres_schema, postgres_url, sqlite_file_url};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Statement};

async fn table_names(store: &Store) -> Vec<String> {
    let conn = store.connection();
    let sql = match store.backend() {
        bursar::store::Backend::Sqlite => {
            "SELECT name AS n FROM sqlite_master WHERE type = 'table' ORDER BY name"
        }
        _ => {
            "SELECT table_name::text AS n FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name"
        }
    };
    let rows = conn
        .query_all_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .unwrap();
    rows.iter()
        .map(|r| r.try_get::<String>("", "n").unwrap())
        .filter(|n| !n.starts_with("sqlite_") && n != "bursar_migrations")
        .collect()
}

fn expected_tables() -> Vec<String> {
    let mut all: Vec<String> = TABLES.iter().map(|s| (*s).to_owned()).collect();
    all.sort();
    all
}

async fn up_down_up(url: &str) {
    let store = Store::connect(url).await.unwrap();
    assert_eq!(
        table_names(&store).await,
        expected_tables(),
        "after up on {url}"
    );
    Migrator::down(store.connection(), None).await.unwrap();
    assert!(table_names(&store).await.is_empty(), "after down on {url}");
    Migrator::up(store.connection(), None).await.unwrap();
    assert_eq!(
        table_names(&store).await,
        expected_tables(),
        "after up again on {url}"
    );
}

#[test]
fn the_schema_has_all_32_tables() {
    assert_eq!(TABLES.len(), 32);
    let expected = [
        "tenants",
        "users",
        "tenant_members",
        "roles",
        "permissions",
        "role_permissions",
        "member_roles",
        "teams",
        "projects",
        "agents",
        "agent_api_keys",
        "policies",
        "budgets",
        "budget_windows",
        "reservations",
        "reservation_lines",
        "ledger_entries",
        "purchase_intents",
        "virtual_cards",
        "transactions",
        "refunds",
        "merchants",
        "blocked_attempts",
        "agent_runs",
        "usage_records",
        "approval_requests",
        "approval_decisions",
        "audit_logs",
        "connections",
        "events",
        "event_consumers",
        "model_prices",
    ];
    let mut expected: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();
    assert_eq!(expected_tables(), expected);
}

#[tokio::test]
async fn migrates_up_down_and_up_again_on_in_memory_sqlite() {
    up_down_up("sqlite::memory:").await;
}

#[tokio::test]
async fn migrates_up_down_and_up_again_on_file_sqlite() {
    let (_dir, url) = sqlite_file_url();
    up_down_up(&url).await;
    // A second store on the same file finds the schema in place.
    let again = Store::connect(&url).await.unwrap();
    assert_eq!(table_names(&again).await, expected_tables());
}

#[tokio::test]
async fn migrates_up_down_and_up_again_on_postgres() {
    if postgres_url().is_none() {
        eprintln!("BURSAR_TEST_POSTGRES_URL is not set; skipping");
        return;
    }
    up_down_up(&fresh_postgres_schema().await).await;
}

#[tokio::test]
async fn every_pooled_connection_sees_the_same_in_memory_database() {
    let store = Store::builder("sqlite::memory:")
        .max_connections(4)
        .connect()
        .await
        .unwrap();
    store
        .tenants()
        .create(NewTenant::new("Acme", "acme"))
        .await
        .unwrap();
    // Many concurrent reads force the pool to open its other connections.
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.tenants().by_slug("acme").await.map(|t| t.name)
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), "Acme");
    }
}

#[tokio::test]
async fn file_sqlite_runs_in_wal_mode() {
    let (_dir, url) = sqlite_file_url();
    let store = Store::connect(&url).await.unwrap();
    let conn = store.connection();
    let row = conn
        .query_one_raw(Statement::from_string(
            conn.get_database_backend(),
            "PRAGMA journal_mode",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get_by_index::<String>(0).unwrap(), "wal");
}

#[tokio::test]
async fn a_url_of_no_supported_database_is_invalid() {
    let err = Store::connect("mysql://root@localhost/test")
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Invalid { ref field, .. } if field == "url"),
        "{err}"
    );
}

#[tokio::test]
async fn a_duplicate_unique_key_is_a_typed_conflict() {
    for backend in backends() {
        let store = fresh(backend).await;
        store
            .tenants()
            .create(NewTenant::new("Acme", "acme"))
            .await
            .unwrap();
        let err = store
            .tenants()
            .create(NewTenant::new("Acme again", "acme"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Conflict { .. }),
            "{backend:?}: {err:?}"
        );
        assert_eq!(err.code(), "conflict");
        assert!(err.to_string().contains("acme"), "{err}");
    }
}

#[tokio::test]
async fn money_round_trips_exactly_and_compares_numerically_in_sql() {
    for backend in backends() {
        let store = fresh(backend).await;
        let t = store
            .tenants()
            .create(NewTenant::new("Acme", "acme"))
            .await
            .unwrap();
        let acme = store.tenant(t.id);
        for limit in ["12345678901234.123456", "9.5", "100", "0.3", "0.000001"] {
            acme.budgets()
                .create(
                    NewBudget::tenant()
                        .monthly(dec(limit), "USD")
                        .name(format!("b {limit}")),
                )
                .await
                .unwrap();
        }
        // Round trip.
        let all = acme.budgets().list().await.unwrap();
        let big = all
            .iter()
            .find(|b| b.name == "b 12345678901234.123456")
            .unwrap();
        assert_eq!(
            big.limit_amount.get(),
            dec("12345678901234.123456"),
            "{backend:?}"
        );
        assert_eq!(big.limit_amount.get().to_string(), "12345678901234.123456");
        // Comparisons and ordering happen in SQL, and are numeric: 9.5 < 100.
        let below_100: Vec<String> = budget::Entity::find()
            .filter(budget::Column::TenantId.eq(t.id))
            .filter(budget::Column::LimitAmount.lt(Amount::new(dec("100")).unwrap()))
            .order_by_asc(budget::Column::LimitAmount)
            .all(store.connection())
            .await
            .unwrap()
            .into_iter()
            .map(|b| b.limit_amount.to_string())
            .collect();
        assert_eq!(below_100, ["0.000001", "0.3", "9.5"], "{backend:?}");
        let ordered: Vec<String> = budget::Entity::find()
            .filter(budget::Column::TenantId.eq(t.id))
            .order_by_desc(budget::Column::LimitAmount)
            .all(store.connection())
            .await
            .unwrap()
            .into_iter()
            .map(|b| b.limit_amount.to_string())
            .collect();
        assert_eq!(
            ordered,
            ["12345678901234.123456", "100", "9.5", "0.3", "0.000001"],
            "{backend:?}"
        );
        if backend == Backend::Postgres {
            store.close().await.unwrap();
        }
    }
}

#[test]
fn bad_money_input_is_a_typed_error_naming_the_value() {
    let usd = Currency::USD;
    let err = Money::new(dec("1.0000001"), usd).unwrap_err();
    assert!(
        matches!(err, MoneyError::TooPrecise { scale: 7, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("1.0000001"), "{err}");

    let err = Money::new(dec("123456789012345678901"), usd).unwrap_err();
    assert!(matches!(err, MoneyError::Overflow { .. }), "{err:?}");
    assert!(err.to_string().contains("123456789012345678901"), "{err}");

    let err = Money::parse("1", "ABC").unwrap_err();
    assert_eq!(err, MoneyError::UnknownCurrency { code: "ABC".into() });
    let as_bursar: Error = err.into();
    assert_eq!(as_bursar.code(), "invalid");
    assert!(as_bursar.to_string().contains("\"ABC\""), "{as_bursar}");

    let big = Money::new(dec("99999999999999999999.999999"), usd).unwrap();
    let err = big
        .checked_add(&Money::new(dec("0.000001"), usd).unwrap())
        .unwrap_err();
    assert!(matches!(err, MoneyError::Overflow { .. }), "{err:?}");
}
