//! PostgreSQL only: row-level security on every tenant-owned table, as a second
//! wall behind bursar's `TenantScope`.
//!
//! Each tenant-owned table gets `ENABLE ROW LEVEL SECURITY` and a policy
//! `bursar_tenant_isolation` that admits the rows whose `tenant_id` equals the
//! `bursar.tenant_id` setting (set per transaction with
//! `SELECT set_config('bursar.tenant_id', '<uuid>', true)`). With the setting
//! unset or empty no row is visible. Row-level security is *enabled*, not
//! *forced*: the table owner (the role that ran the migration) bypasses it, so a
//! host connecting as the owner works unchanged, and a host connecting as a
//! separate, non-owner application role gets the isolation (bursar names the
//! tenant with `RowLevelSecurity::Enforced`). [`crate::force_row_level_security`]
//! forces it on the owner too. The policy has no separate `WITH CHECK`, so its
//! expression also checks every row inserted or updated.
//!
//! On SQLite both directions do nothing.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

use crate::tenant_owned_tables;

/// The policy name on every tenant-owned table.
pub const POLICY_NAME: &str = "bursar_tenant_isolation";

/// The policy's predicate. `NULLIF` turns the empty string PostgreSQL reports
/// for a setting that was set and then reset into NULL (matching nothing)
/// instead of a cast error.
pub const TENANT_PREDICATE: &str =
    "tenant_id = NULLIF(current_setting('bursar.tenant_id', true), '')::uuid";

/// The migration.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        // Tables that later migrations create enable it themselves.
        for table in tenant_owned_tables().filter(|t| !crate::LATER_TABLES.contains(t)) {
            db.execute_unprepared(&format!(
                "ALTER TABLE \"{table}\" ENABLE ROW LEVEL SECURITY; \
                 CREATE POLICY {POLICY_NAME} ON \"{table}\" USING ({TENANT_PREDICATE})"
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        let tables: Vec<_> = tenant_owned_tables()
            .filter(|t| !crate::LATER_TABLES.contains(t))
            .collect();
        for table in tables.into_iter().rev() {
            db.execute_unprepared(&format!(
                "DROP POLICY IF EXISTS {POLICY_NAME} ON \"{table}\"; \
                 ALTER TABLE \"{table}\" DISABLE ROW LEVEL SECURITY"
            ))
            .await?;
        }
        Ok(())
    }
}
