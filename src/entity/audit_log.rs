//! `audit_logs`: an append-only, hash-chained audit entry. `hash` covers the entry and `prev_hash`, so editing or deleting an entry breaks the chain.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use super::json::Metadata;
use crate::id::{AuditLogId, TenantId};

/// An append-only, hash-chained audit entry. `hash` covers the entry and `prev_hash`, so editing or deleting an entry breaks the chain.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "audit_logs")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: AuditLogId,
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// Per-tenant sequence number, starting at 1, without gaps.
    pub seq: i64,
    /// Who acted.
    pub actor_type: AuditActorType,
    /// The acting user, agent or service account.
    pub actor_id: Option<Uuid>,
    /// What was done, e.g. `policy.created`.
    #[sea_orm(column_type = "String(StringLen::N(100))")]
    pub action: String,
    /// Kind of the affected resource.
    #[sea_orm(column_type = "String(StringLen::N(100))")]
    pub resource_type: String,
    /// Id of the affected resource.
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub resource_id: Option<String>,
    /// Severity.
    pub level: AuditLevel,
    /// Outcome.
    pub status: AuditStatus,
    /// Groups the entries of one request across services.
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub correlation_id: Option<String>,
    /// Client IP (v4 or v6).
    #[sea_orm(column_type = "String(StringLen::N(45))")]
    pub ip_address: Option<String>,
    /// Client user agent.
    #[sea_orm(column_type = "String(StringLen::N(500))")]
    pub user_agent: Option<String>,
    /// Human summary.
    #[sea_orm(column_type = "Text")]
    pub message: Option<String>,
    /// Structured details.
    #[sea_orm(column_type = "JsonBinary")]
    pub details: AuditDetails,
    /// `hash` of the previous entry of the tenant (64 zeros for the first).
    #[sea_orm(column_type = "String(StringLen::N(64))")]
    pub prev_hash: String,
    /// Hex SHA-256 of this entry's canonical form and `prev_hash`.
    #[sea_orm(column_type = "String(StringLen::N(64))")]
    pub hash: String,
    /// When the row was created (UTC).
    pub created_at: DateTimeUtc,
}

/// Relations of `audit_logs`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `tenant_id` → `tenants`.
    #[sea_orm(
        belongs_to = "super::tenant::Entity",
        from = "Column::TenantId",
        to = "super::tenant::Column::Id"
    )]
    Tenant,
}

impl Related<super::tenant::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tenant.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

/// Who performed an audited action.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[serde(rename_all = "snake_case")]
pub enum AuditActorType {
    /// A user. Stored as `user`.
    #[sea_orm(string_value = "user")]
    User,
    /// An agent. Stored as `agent`.
    #[sea_orm(string_value = "agent")]
    Agent,
    /// A service account of the host. Stored as `service_account`.
    #[sea_orm(string_value = "service_account")]
    ServiceAccount,
    /// bursar itself (e.g. an expiry sweep). Stored as `system`.
    #[sea_orm(string_value = "system")]
    System,
}

/// Severity of an audit entry.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum AuditLevel {
    /// Routine. Stored as `info`.
    #[sea_orm(string_value = "info")]
    Info,
    /// Noteworthy. Stored as `warn`.
    #[sea_orm(string_value = "warn")]
    Warn,
    /// A failure. Stored as `error`.
    #[sea_orm(string_value = "error")]
    Error,
}

/// Outcome of an audited action.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum AuditStatus {
    /// Succeeded. Stored as `success`.
    #[sea_orm(string_value = "success")]
    Success,
    /// Failed. Stored as `error`.
    #[sea_orm(string_value = "error")]
    Error,
    /// Refused by a policy, a budget or a permission check. Stored as `denied`.
    #[sea_orm(string_value = "denied")]
    Denied,
}

/// Structured details of an audit entry, stored as JSON in `audit_logs.details`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, FromJsonQueryResult)]
#[serde(default)]
pub struct AuditDetails {
    /// Reason codes of the decision audited, if any.
    pub reason_codes: Vec<String>,
    /// The resource before the change (for updates and deletes).
    pub before: Option<serde_json::Value>,
    /// The resource after the change (for creates and updates).
    pub after: Option<serde_json::Value>,
    /// Host-defined labels.
    pub metadata: Metadata,
}
