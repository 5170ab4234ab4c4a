//! PostgreSQL only: the two lookups that cannot name a tenant first, each
//! admitted by a narrow `SELECT` policy keyed on its own setting.
//!
//! * `bursar_key_lookup` on `agent_api_keys` admits the row whose `key_hash`
//!   equals the `bursar.key_hash` setting: an agent presenting a key has not
//!   said which tenant it belongs to, and the hash of the whole secret is what
//!   finds its row (`Store::authenticate_agent`).
//! * `bursar_user_memberships` on `tenant_members` admits the rows of the user
//!   named by the `bursar.user_id` setting, in every tenant: deactivating a
//!   user audits the change in each tenant they belong to.
//!
//! Both are `FOR SELECT` and permissive, so they only add rows to what a
//! transaction reads while it holds that setting; inserting, changing or
//! deleting rows still needs `bursar.tenant_id` to name their tenant. With
//! the setting unset or empty they admit nothing. On SQLite both directions do
//! nothing.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

/// The policy that admits an API key by the hash of its secret.
pub const KEY_LOOKUP_POLICY: &str = "bursar_key_lookup";
/// Its predicate.
pub const KEY_LOOKUP_PREDICATE: &str =
    "key_hash = NULLIF(current_setting('bursar.key_hash', true), '')";
/// The policy that admits one user's memberships in every tenant.
pub const USER_MEMBERSHIPS_POLICY: &str = "bursar_user_memberships";
/// Its predicate.
pub const USER_MEMBERSHIPS_PREDICATE: &str =
    "user_id = NULLIF(current_setting('bursar.user_id', true), '')::uuid";

/// The migration.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "CREATE POLICY {KEY_LOOKUP_POLICY} ON \"agent_api_keys\" \
                     FOR SELECT USING ({KEY_LOOKUP_PREDICATE}); \
                 CREATE POLICY {USER_MEMBERSHIPS_POLICY} ON \"tenant_members\" \
                     FOR SELECT USING ({USER_MEMBERSHIPS_PREDICATE})"
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "DROP POLICY IF EXISTS {USER_MEMBERSHIPS_POLICY} ON \"tenant_members\"; \
                 DROP POLICY IF EXISTS {KEY_LOOKUP_POLICY} ON \"agent_api_keys\""
            ))
            .await?;
        Ok(())
    }
}
