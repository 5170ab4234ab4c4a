//! The bursar schema as a [`sea_orm_migration`] [`Migrator`], and a command-line
//! runner (`cargo run -p bursar-migration -- up`).
//!
//! Five migrations:
//!
//! 1. [`m20250101_000001_create_tables`]: every table in [`TABLES`] with its keys,
//!    tenant-scoped foreign keys and indexes.
//! 2. [`m20250101_000002_row_level_security`]: on PostgreSQL only, row-level
//!    security on every tenant-owned table, keyed on the `bursar.tenant_id`
//!    setting. A no-op on SQLite.
//! 3. [`m20250101_000003_append_only`]: triggers that refuse `UPDATE` and
//!    `DELETE` on `audit_logs` and `ledger_entries`, on both backends.
//! 4. [`m20250101_000004_usage`]: the action kind of purchase intents, token
//!    detail on usage records, and the `model_prices` table.
//! 5. [`m20250101_000005_cross_tenant_lookups`]: on PostgreSQL only, the
//!    narrow policies that let an API key be found by its hash and a user's
//!    memberships be listed across tenants. A no-op on SQLite.
//!
//! [`force_row_level_security`] turns the policies on for the tables' owner
//! too (and off again); no migration does that.
//!
//! This crate does not depend on `bursar`; the entities in `bursar::entity` are
//! checked against it by bursar's round-trip test.
//!
//! Its `sqlite` and `postgres` features (both on by default) select the
//! database drivers, and at least one is needed; `cli` (default) builds the
//! command-line runner.

#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
compile_error!(
    "bursar-migration needs a database driver: enable its `sqlite` feature, its `postgres` feature, or both (through bursar's features of the same names, when it comes with bursar)"
);

pub use sea_orm_migration::prelude::*;

pub mod columns;
pub mod m20250101_000001_create_tables;
pub mod m20250101_000002_row_level_security;
pub mod m20250101_000003_append_only;
pub mod m20250101_000004_usage;
pub mod m20250101_000005_cross_tenant_lookups;
pub mod widths;

/// Every table, in creation order (parents before children).
pub const TABLES: [&str; 32] = [
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
    "agent_runs",
    "reservations",
    "approval_requests",
    "purchase_intents",
    "reservation_lines",
    "ledger_entries",
    "virtual_cards",
    "transactions",
    "refunds",
    "merchants",
    "blocked_attempts",
    "usage_records",
    "approval_decisions",
    "audit_logs",
    "connections",
    "events",
    "event_consumers",
    "model_prices",
];

/// Tenant-owned tables created after the row-level-security migration; the
/// migration that creates each one also enables row-level security on it.
pub const LATER_TABLES: [&str; 1] = ["model_prices"];

/// The tables that do not belong to one tenant: `tenants` itself, the global
/// `users` identities and the global `permissions` codes. Every other table
/// carries `tenant_id`.
pub const GLOBAL_TABLES: [&str; 3] = ["tenants", "users", "permissions"];

/// The tables that carry `tenant_id` (all of [`TABLES`] but [`GLOBAL_TABLES`]),
/// in creation order.
pub fn tenant_owned_tables() -> impl Iterator<Item = &'static str> {
    TABLES.into_iter().filter(|t| !GLOBAL_TABLES.contains(t))
}

/// Forces (`force = true`) or stops forcing row-level security on every
/// tenant-owned table: `ALTER TABLE … FORCE ROW LEVEL SECURITY` (or `NO FORCE`).
///
/// Forced, the policies apply to the tables' owner as well, so a host that
/// connects as the owner is confined like a non-owner role; it must then name
/// the tenant in every transaction (bursar's `RowLevelSecurity::Enforced`).
/// Superusers and roles with `BYPASSRLS` are never confined. Run it as the
/// owner, after the migrations; migrations that later rewrite tenant rows need
/// it undone first. On SQLite it does nothing.
///
/// # Errors
/// The database's error when a table is missing or the role does not own it.
pub async fn force_row_level_security<C>(db: &C, force: bool) -> Result<(), DbErr>
where
    C: sea_orm_migration::sea_orm::ConnectionTrait,
{
    if db.get_database_backend() != sea_orm_migration::sea_orm::DatabaseBackend::Postgres {
        return Ok(());
    }
    let mode = if force { "FORCE" } else { "NO FORCE" };
    let sql: Vec<String> = tenant_owned_tables()
        .map(|table| format!("ALTER TABLE \"{table}\" {mode} ROW LEVEL SECURITY"))
        .collect();
    db.execute_unprepared(&sql.join("; ")).await?;
    Ok(())
}

/// Runs bursar's migrations: `Migrator::up(&db, None).await`.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20250101_000001_create_tables::Migration),
            Box::new(m20250101_000002_row_level_security::Migration),
            Box::new(m20250101_000003_append_only::Migration),
            Box::new(m20250101_000004_usage::Migration),
            Box::new(m20250101_000005_cross_tenant_lookups::Migration),
        ]
    }

    fn migration_table_name() -> DynIden {
        "bursar_migrations".into_iden()
    }
}
