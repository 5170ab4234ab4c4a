//! The append-only tables: triggers that refuse every `UPDATE` and `DELETE` of
//! a row of [`APPEND_ONLY_TABLES`] (and, on PostgreSQL, `TRUNCATE`), on
//! PostgreSQL and SQLite alike.
//!
//! bursar only ever inserts into these tables: the audit chain and the ledger
//! are history. A change behind bursar's back now needs a schema change first
//! (dropping the trigger), which a role without ownership of the table cannot
//! make; and a change that does happen is still caught, by
//! `AuditLog::verify` and `Reservations::reconcile`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

/// The tables whose rows are never changed or deleted.
pub const APPEND_ONLY_TABLES: [&str; 2] = ["audit_logs", "ledger_entries"];

/// The PostgreSQL function every trigger calls.
pub const REFUSE_FUNCTION: &str = "bursar_refuse_change";

/// The statements that create the triggers on `table`.
#[must_use]
pub fn create_sql(backend: DatabaseBackend, table: &str) -> Vec<String> {
    match backend {
        DatabaseBackend::Postgres => vec![
            format!(
                "CREATE TRIGGER bursar_append_only BEFORE UPDATE OR DELETE ON \"{table}\" \
                 FOR EACH ROW EXECUTE FUNCTION {REFUSE_FUNCTION}()"
            ),
            format!(
                "CREATE TRIGGER bursar_append_only_truncate BEFORE TRUNCATE ON \"{table}\" \
                 FOR EACH STATEMENT EXECUTE FUNCTION {REFUSE_FUNCTION}()"
            ),
        ],
        _ => ["UPDATE", "DELETE"]
            .into_iter()
            .map(|op| {
                format!(
                    "CREATE TRIGGER bursar_append_only_{table}_{lower} BEFORE {op} ON \"{table}\" \
                     BEGIN SELECT RAISE(ABORT, 'bursar: {table} is append-only: {op} is refused'); END",
                    lower = op.to_lowercase()
                )
            })
            .collect(),
    }
}

/// The statements that drop the triggers on `table` (the migration's `down`,
/// and a deliberate repair by the table's owner).
#[must_use]
pub fn drop_sql(backend: DatabaseBackend, table: &str) -> Vec<String> {
    match backend {
        DatabaseBackend::Postgres => vec![
            format!("DROP TRIGGER IF EXISTS bursar_append_only ON \"{table}\""),
            format!("DROP TRIGGER IF EXISTS bursar_append_only_truncate ON \"{table}\""),
        ],
        _ => ["update", "delete"]
            .into_iter()
            .map(|op| format!("DROP TRIGGER IF EXISTS bursar_append_only_{table}_{op}"))
            .collect(),
    }
}

/// The migration.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let db = manager.get_connection();
        if backend == DatabaseBackend::Postgres {
            db.execute_unprepared(&format!(
                "CREATE OR REPLACE FUNCTION {REFUSE_FUNCTION}() RETURNS trigger \
                 LANGUAGE plpgsql AS $$ BEGIN \
                 RAISE EXCEPTION 'bursar: % is append-only: % is refused', TG_TABLE_NAME, TG_OP \
                 USING ERRCODE = 'insufficient_privilege'; \
                 END $$"
            ))
            .await?;
        }
        for table in APPEND_ONLY_TABLES {
            for sql in create_sql(backend, table) {
                db.execute_unprepared(&sql).await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let db = manager.get_connection();
        for table in APPEND_ONLY_TABLES {
            for sql in drop_sql(backend, table) {
                db.execute_unprepared(&sql).await?;
            }
        }
        if backend == DatabaseBackend::Postgres {
            db.execute_unprepared(&format!("DROP FUNCTION IF EXISTS {REFUSE_FUNCTION}()"))
                .await?;
        }
        Ok(())
    }
}
