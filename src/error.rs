//! The one error type of bursar.
//!
//! Every error has a stable [`Error::code`]. Database failures are classified
//! so that a host can tell what to retry:
//!
//! | code | variant | what happened | transient |
//! |---|---|---|---|
//! | `conflict` | [`Error::Conflict`] | a unique key is taken (PostgreSQL 23505, SQLite 2067/1555) | no |
//! | `invalid` | [`Error::Invalid`] | a foreign key names no row (PostgreSQL 23503, SQLite 787), or a text is longer than its column (PostgreSQL 22001) | no |
//! | `contention` | [`Error::Contention`] | serialization failure (40001), deadlock (40P01), lock not available (55P03); SQLite busy (5) or locked (6) | **yes** |
//! | `unavailable` | [`Error::Unavailable`] | lost connection, I/O error, pool acquire timeout or closed pool, server shutting down or starting (57P01, 57P02, 57P03, 08xxx), too many connections (53300), statement canceled (57014); SQLite I/O error (10) or cannot open (14) | **yes** |
//! | `storage_full` | [`Error::StorageFull`] | disk full (PostgreSQL 53100 and the other 53xxx insufficient-resources codes; SQLite 13) | no, until space is freed |
//! | `database` | [`Error::Database`] | anything else (including a change refused by an append-only table's trigger) | no |
//!
//! One more code is not about the database: `crypto` ([`Error::Crypto`]) for
//! a missing key or a sealed value or signature that does not verify.
//!
//! A transient error is safe to retry with the same idempotency key. No
//! message names a table, constraint or SQL statement, and none repeats the
//! driver's text: that detail goes to the log (`tracing`, target
//! `bursar::error`, at `debug` for violations and contention, `warn` for the
//! rest) and stays reachable through [`std::error::Error::source`] on
//! [`Error::Database`].

use std::fmt;

mod classify;

/// Everything that can go wrong in bursar.
///
/// Match on the variants, or use [`Error::code`] for a stable machine-readable
/// code (for logs, metrics and API responses).
///
/// ```
/// let err = bursar::Error::Invalid { field: "amount".into(), reason: "must be positive, got -1".into() };
/// assert_eq!(err.code(), "invalid");
/// assert_eq!(err.to_string(), "invalid amount: must be positive, got -1");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The row does not exist, or belongs to another tenant (the two are
    /// indistinguishable on purpose).
    #[error("{entity} {id} not found")]
    NotFound {
        /// The kind of row, e.g. `"agent"`.
        entity: &'static str,
        /// The id or key that was looked up.
        id: String,
    },
    /// An input was out of bounds or malformed.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field (or JSON path) that was wrong.
        field: String,
        /// What was wrong with it, including the offending value.
        reason: String,
    },
    /// A policy failed validation.
    #[error("invalid policy at {path}: {reason}")]
    InvalidPolicy {
        /// JSON path into the policy, e.g. `conditions.all[2].merchant_in[0]`.
        path: String,
        /// What was wrong, including the offending value.
        reason: String,
    },
    /// The operation conflicts with the current state: a duplicate unique key,
    /// or a state transition that is not allowed from the current state.
    #[error("conflict on {entity}: {reason}")]
    Conflict {
        /// The kind of row, e.g. `"reservation"`.
        entity: &'static str,
        /// What conflicted (the key, or the current state).
        reason: String,
    },
    /// The user is a member of the tenant but lacks the permission the
    /// operation needs.
    #[error("user {user} lacks the permission {permission}")]
    Forbidden {
        /// The user.
        user: String,
        /// The permission code, e.g. `approvals:write`.
        permission: &'static str,
    },
    /// A credential (agent API key) was missing, malformed, unknown, revoked
    /// or expired. Deliberately says no more than that.
    #[error("unauthenticated")]
    Unauthenticated,
    /// A key was missing, or sealed data or a signature did not verify: a
    /// key version the [`KeyProvider`](crate::keys::KeyProvider) does not
    /// hold, a ciphertext that was changed, truncated or moved to another
    /// row or tenant, a checkpoint whose signature does not match. Never
    /// carries key or secret bytes.
    #[error("cryptographic check failed: {reason}")]
    Crypto {
        /// What failed, in neutral words.
        reason: String,
    },
    /// Two writers collided: a serialization failure or deadlock on
    /// PostgreSQL, a busy or locked database on SQLite. Nothing was committed.
    ///
    /// Transient: retrying the same request with the same idempotency key is
    /// safe and will usually succeed.
    #[error("contention: {reason} (transient: retry with the same idempotency key)")]
    Contention {
        /// What collided, in neutral words (no SQL, table or constraint names).
        reason: String,
    },
    /// The database could not be reached or answered: a lost connection, an
    /// I/O error, a pool that handed out no connection within its acquire
    /// timeout or was closed, a server shutting down or not yet accepting
    /// connections.
    ///
    /// Transient: the request may or may not have been committed before the
    /// connection was lost, so retry it with the same idempotency key (a
    /// retried reservation then returns the first result instead of holding
    /// twice).
    #[error("database unavailable: {reason} (transient: retry with the same idempotency key)")]
    Unavailable {
        /// What failed, in neutral words.
        reason: String,
    },
    /// The database ran out of space (SQLite's "database or disk is full",
    /// PostgreSQL's `disk_full` and other insufficient-resources errors).
    /// Nothing was committed.
    ///
    /// Not [transient](Error::is_transient): retrying before an operator frees
    /// space fails the same way. Once space is back, the same request with the
    /// same idempotency key is safe to send again, and the same
    /// [`Store`](crate::Store) works without being reopened.
    #[error(
        "database storage full: {reason} (retry with the same idempotency key once space is freed)"
    )]
    StorageFull {
        /// What ran out, in neutral words.
        reason: String,
    },
    /// The database failed in a way that retrying will not fix (or that
    /// bursar does not recognise).
    ///
    /// The message is deliberately neutral; the driver's own error (which may
    /// name tables, constraints or SQL) is kept as the [source](std::error::Error::source)
    /// for logs and is never part of the message.
    #[error("database error")]
    Database(#[source] sea_orm::DbErr),
}

impl Error {
    /// A stable, machine-readable code for this error.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::Invalid { .. } => "invalid",
            Self::InvalidPolicy { .. } => "invalid_policy",
            Self::Conflict { .. } => "conflict",
            Self::Forbidden { .. } => "forbidden",
            Self::Unauthenticated => "unauthenticated",
            Self::Crypto { .. } => "crypto",
            Self::Contention { .. } => "contention",
            Self::Unavailable { .. } => "unavailable",
            Self::StorageFull { .. } => "storage_full",
            Self::Database(_) => "database",
        }
    }

    /// Whether the failure is transient: [`Error::Contention`] or
    /// [`Error::Unavailable`]. A transient error is safe to retry **with the
    /// same idempotency key** (a request without one may have been committed
    /// before a connection was lost; with one, a retry returns the first
    /// result), and a retry after a short pause will usually succeed.
    ///
    /// Everything else is permanent: retrying the same request gives the same
    /// answer. [`Error::StorageFull`] is permanent too, until an operator frees
    /// space.
    ///
    /// ```
    /// let busy = bursar::Error::Contention { reason: "database is locked".into() };
    /// assert!(busy.is_transient());
    /// assert_eq!(busy.code(), "contention");
    /// assert!(busy.to_string().contains("retry with the same idempotency key"));
    /// let bad = bursar::Error::Invalid { field: "amount".into(), reason: "-1".into() };
    /// assert!(!bad.is_transient());
    /// ```
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Contention { .. } | Self::Unavailable { .. })
    }

    /// Shorthand for [`Error::Invalid`].
    pub(crate) fn invalid(field: impl Into<String>, reason: impl fmt::Display) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.to_string(),
        }
    }

    /// Shorthand for [`Error::NotFound`].
    pub(crate) fn not_found(entity: &'static str, id: impl fmt::Display) -> Self {
        Self::NotFound {
            entity,
            id: id.to_string(),
        }
    }

    /// Shorthand for [`Error::Conflict`].
    pub(crate) fn conflict(entity: &'static str, reason: impl fmt::Display) -> Self {
        Self::Conflict {
            entity,
            reason: reason.to_string(),
        }
    }

    /// The conflict of a row whose idempotency key a concurrent call claimed
    /// first: the caller's retry finds that call's result.
    pub(crate) fn key_taken(entity: &'static str, key: Option<&str>) -> Self {
        Self::conflict(
            entity,
            format!(
                "idempotency key {:?} is taken by a concurrent call",
                key.unwrap_or_default()
            ),
        )
    }
}

impl From<sea_orm::DbErr> for Error {
    /// Classifies a database failure (see [`crate::error`] for the table):
    /// unique-key violations become [`Error::Conflict`], foreign-key
    /// violations [`Error::Invalid`] (field `reference`), and faults
    /// [`Error::Contention`], [`Error::Unavailable`] or [`Error::StorageFull`];
    /// anything else is [`Error::Database`]. No message carries the driver's
    /// text; it is logged (`tracing`, target `bursar::error`) instead.
    fn from(err: sea_orm::DbErr) -> Self {
        classify::classify(err)
    }
}

/// `Result<T, bursar::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
