//! From a driver's error to a typed [`Error`] with a neutral message: the
//! driver's text (table, constraint and column names, SQL) goes to the log
//! only.

use sea_orm::{ConnAcquireErr, DbErr, RuntimeErr};
use sqlx::error::DatabaseError;

use super::Error;

/// What a database error means to a caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Unique,
    ForeignKey,
    // Only PostgreSQL reports it: SQLite does not enforce text lengths.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    TooLong,
    Contention(&'static str),
    Unavailable(&'static str),
    StorageFull(&'static str),
    Permanent,
}

pub(super) fn classify(err: DbErr) -> Error {
    let (class, table) = class_of(&err);
    match class {
        Class::Unique => {
            tracing::debug!(target: "bursar::error", error = %err, "unique key violation");
            Error::Conflict {
                entity: table.map_or("row", entity_of_table),
                reason: "one with the same key already exists".into(),
            }
        }
        Class::ForeignKey => {
            tracing::debug!(target: "bursar::error", error = %err, "foreign key violation");
            Error::Invalid {
                field: "reference".into(),
                reason: "refers to a row that does not exist, or to one that is still referred to"
                    .into(),
            }
        }
        Class::TooLong => {
            tracing::warn!(target: "bursar::error", error = %err, "text longer than its column");
            Error::Invalid {
                field: "text".into(),
                reason: "longer than the stored column allows".into(),
            }
        }
        Class::Contention(reason) => {
            tracing::debug!(target: "bursar::error", error = %err, "contention");
            Error::Contention {
                reason: reason.into(),
            }
        }
        Class::Unavailable(reason) => {
            tracing::error!(target: "bursar::error", error = %err, "database unavailable");
            Error::Unavailable {
                reason: reason.into(),
            }
        }
        Class::StorageFull(reason) => {
            tracing::error!(target: "bursar::error", error = %err, "database storage full");
            Error::StorageFull {
                reason: reason.into(),
            }
        }
        Class::Permanent => {
            tracing::error!(target: "bursar::error", error = %err, "database error");
            Error::Database(err)
        }
    }
}

/// The class of `err`, and the table it names when it is a constraint
/// violation.
fn class_of(err: &DbErr) -> (Class, Option<String>) {
    match err {
        DbErr::ConnectionAcquire(ConnAcquireErr::Timeout) => (
            Class::Unavailable("timed out waiting for a pooled connection"),
            None,
        ),
        DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed) => {
            (Class::Unavailable("the connection pool is closed"), None)
        }
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => sqlx_class(e),
        DbErr::Conn(_) => (Class::Unavailable("the connection failed"), None),
        _ => (Class::Permanent, None),
    }
}

fn sqlx_class(err: &sqlx::Error) -> (Class, Option<String>) {
    let class = match err {
        sqlx::Error::Database(e) => return database_class(e.as_ref()),
        sqlx::Error::Io(_) => Class::Unavailable("I/O error talking to the database"),
        sqlx::Error::Tls(_) => Class::Unavailable("TLS error talking to the database"),
        sqlx::Error::Protocol(_) => Class::Unavailable("the connection broke mid-message"),
        sqlx::Error::PoolTimedOut => {
            Class::Unavailable("timed out waiting for a pooled connection")
        }
        sqlx::Error::PoolClosed => Class::Unavailable("the connection pool is closed"),
        sqlx::Error::WorkerCrashed => Class::Unavailable("the connection's worker stopped"),
        _ => Class::Permanent,
    };
    (class, None)
}

fn database_class(e: &dyn DatabaseError) -> (Class, Option<String>) {
    #[cfg(feature = "postgres")]
    if let Some(pg) = e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        let class = postgres_class(&e.code().unwrap_or_default());
        let table = matches!(class, Class::Unique).then(|| pg.table().map(str::to_owned));
        return (class, table.flatten());
    }
    #[cfg(feature = "sqlite")]
    if e.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        let code = e.code().unwrap_or_default();
        let class = code.parse::<i32>().map_or(Class::Permanent, sqlite_class);
        let table = matches!(class, Class::Unique)
            .then(|| sqlite_table(e.message()))
            .flatten();
        return (class, table);
    }
    (Class::Permanent, None)
}

/// By SQLSTATE (<https://www.postgresql.org/docs/current/errcodes-appendix.html>).
#[cfg(feature = "postgres")]
fn postgres_class(code: &str) -> Class {
    match code {
        "23505" => Class::Unique,
        "23503" => Class::ForeignKey,
        "22001" => Class::TooLong,
        "40001" => Class::Contention("serialization failure between concurrent transactions"),
        "40P01" => Class::Contention("deadlock between concurrent transactions"),
        "55P03" => Class::Contention("a lock was not available"),
        "57P01" | "57P02" => Class::Unavailable("the database server is shutting down"),
        "57P03" => Class::Unavailable("the database server is not accepting connections yet"),
        "57014" => Class::Unavailable("the statement was canceled"),
        "53300" => Class::Unavailable("the database server has too many connections"),
        "53100" => Class::StorageFull("the database server's disk is full"),
        "53200" => Class::StorageFull("the database server is out of memory"),
        c if c.starts_with("53") => Class::StorageFull("the database server ran out of resources"),
        c if c.starts_with("08") => Class::Unavailable("the connection to the database failed"),
        _ => Class::Permanent,
    }
}

/// By SQLite's extended result code (<https://sqlite.org/rescode.html>).
#[cfg(feature = "sqlite")]
fn sqlite_class(code: i32) -> Class {
    match code {
        // SQLITE_CONSTRAINT_UNIQUE, SQLITE_CONSTRAINT_PRIMARYKEY
        2067 | 1555 => Class::Unique,
        // SQLITE_CONSTRAINT_FOREIGNKEY
        787 => Class::ForeignKey,
        _ => match code & 0xff {
            5 => Class::Contention("the database is busy"),
            6 => Class::Contention("the database is locked"),
            13 => Class::StorageFull("the database or disk is full"),
            10 => Class::Unavailable("I/O error on the database file"),
            14 => Class::Unavailable("the database file cannot be opened"),
            _ => Class::Permanent,
        },
    }
}

/// The table in SQLite's "UNIQUE constraint failed: table.column, …".
#[cfg(feature = "sqlite")]
fn sqlite_table(message: &str) -> Option<String> {
    let (_, columns) = message.split_once(": ")?;
    let (table, _) = columns.split_once('.')?;
    Some(table.to_owned())
}

/// The entity a table holds, as [`Error::Conflict`] names it.
fn entity_of_table(table: String) -> &'static str {
    match table.as_str() {
        "tenants" => "tenant",
        "users" => "user",
        "tenant_members" => "member",
        "roles" => "role",
        "permissions" => "permission",
        "role_permissions" => "role permission",
        "member_roles" => "member role",
        "teams" => "team",
        "projects" => "project",
        "agents" => "agent",
        "agent_api_keys" => "agent key",
        "policies" => "policy",
        "budgets" => "budget",
        "budget_windows" => "budget window",
        "agent_runs" => "run",
        "reservations" => "reservation",
        "approval_requests" => "approval",
        "purchase_intents" => "purchase intent",
        "reservation_lines" => "reservation line",
        "ledger_entries" => "ledger entry",
        "virtual_cards" => "card",
        "transactions" => "transaction",
        "merchants" => "merchant",
        "blocked_attempts" => "blocked attempt",
        "usage_records" => "usage record",
        "approval_decisions" => "approval decision",
        "audit_logs" => "audit entry",
        "connections" => "connection",
        _ => "row",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "postgres")]
    #[test]
    fn sqlstates_have_a_class() {
        assert_eq!(
            postgres_class("40001"),
            Class::Contention("serialization failure between concurrent transactions")
        );
        assert!(matches!(postgres_class("40P01"), Class::Contention(_)));
        assert!(matches!(postgres_class("08006"), Class::Unavailable(_)));
        assert!(matches!(postgres_class("57P01"), Class::Unavailable(_)));
        assert!(matches!(postgres_class("53100"), Class::StorageFull(_)));
        assert!(matches!(postgres_class("53300"), Class::Unavailable(_)));
        assert_eq!(postgres_class("42P01"), Class::Permanent);
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn sqlite_codes_have_a_class() {
        assert!(matches!(sqlite_class(5), Class::Contention(_)));
        // SQLITE_BUSY_SNAPSHOT
        assert!(matches!(sqlite_class(517), Class::Contention(_)));
        assert!(matches!(sqlite_class(6), Class::Contention(_)));
        assert!(matches!(sqlite_class(13), Class::StorageFull(_)));
        // SQLITE_IOERR_WRITE
        assert!(matches!(sqlite_class(778), Class::Unavailable(_)));
        assert_eq!(sqlite_class(2067), Class::Unique);
        assert_eq!(sqlite_class(787), Class::ForeignKey);
        // SQLITE_CONSTRAINT_CHECK is a bug, not a fault
        assert_eq!(sqlite_class(275), Class::Permanent);
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn the_table_of_a_sqlite_unique_violation_is_found() {
        assert_eq!(
            sqlite_table("UNIQUE constraint failed: tenants.slug").as_deref(),
            Some("tenants")
        );
    }

    #[test]
    fn tables_name_their_entity() {
        assert_eq!(entity_of_table("tenants".into()), "tenant");
        assert_eq!(entity_of_table("elsewhere".into()), "row");
    }

    #[test]
    fn pool_faults_are_unavailable() {
        let err = classify(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout));
        assert_eq!(err.code(), "unavailable");
        assert!(err.is_transient());
    }
}
