//! `policies`: a policy: a scope, a condition tree and the effect it has on matching requests.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::id::{PolicyId, TenantId, UserId};

/// A policy: a scope, a condition tree and the effect it has on matching requests.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "policies")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: PolicyId,
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// Display name.
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub name: String,
    /// What the policy is for.
    #[sea_orm(column_type = "Text")]
    pub description: Option<String>,
    /// Which requests the policy considers: the whole tenant or listed teams, projects and agents.
    #[sea_orm(column_type = "JsonBinary")]
    pub scope: Json,
    /// What a match does.
    pub effect: crate::policy::Effect,
    /// Higher priorities are listed first among reasons.
    pub priority: i32,
    /// Disabled policies are never evaluated.
    pub enabled: bool,
    /// Stable machine code reported when the policy matches.
    #[sea_orm(column_type = "String(StringLen::N(64))")]
    pub reason_code: String,
    /// Human explanation reported when the policy matches.
    #[sea_orm(column_type = "Text")]
    pub message: String,
    /// The condition tree, as written by the policy module (validated on write).
    #[sea_orm(column_type = "JsonBinary")]
    pub conditions: Json,
    /// The approval settings of a `require_approval` policy (quorum, approver
    /// role, expiry, escalation), as written by the policy module.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub approval: Option<Json>,
    /// Incremented on every change (optimistic concurrency, cache invalidation).
    pub version: i32,
    /// The user who wrote the policy.
    pub created_by: Option<UserId>,
    /// When the row was created (UTC).
    pub created_at: DateTimeUtc,
    /// When the row was last changed (UTC).
    pub updated_at: DateTimeUtc,
}

/// Relations of `policies`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `tenant_id` → `tenants`.
    #[sea_orm(
        belongs_to = "super::tenant::Entity",
        from = "Column::TenantId",
        to = "super::tenant::Column::Id"
    )]
    Tenant,
    /// Rows of `blocked_attempts` pointing here.
    #[sea_orm(has_many = "super::blocked_attempt::Entity")]
    BlockedAttempts,
}

impl Related<super::tenant::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tenant.def()
    }
}

impl Related<super::blocked_attempt::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::BlockedAttempts.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
