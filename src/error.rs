//! The one error type of bursar.

use std::fmt;

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
    /// The database failed.
    #[error("database error: {0}")]
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
            Self::Database(_) => "database",
        }
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
}

impl From<sea_orm::DbErr> for Error {
    /// Unique-key violations become [`Error::Conflict`]; everything else is
    /// [`Error::Database`].
    fn from(err: sea_orm::DbErr) -> Self {
        match err.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(detail)) => Self::Conflict {
                entity: "row",
                reason: format!("duplicate key: {detail}"),
            },
            Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(detail)) => Self::Invalid {
                field: "reference".into(),
                reason: format!("refers to a row that does not exist: {detail}"),
            },
            _ => Self::Database(err),
        }
    }
}

/// `Result<T, bursar::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
