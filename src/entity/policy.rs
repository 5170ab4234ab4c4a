//! `policies`: a policy: a scope, a condition tree and the effect it has on matching requests.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::id::{AgentId, PolicyId, ProjectId, TeamId, TenantId, UserId};

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
    pub scope: PolicyScope,
    /// What a match does.
    pub effect: PolicyEffect,
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

/// What a matching policy does.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[serde(rename_all = "snake_case")]
pub enum PolicyEffect {
    /// Approve the request (unless a deny or approval policy also matches). Stored as `allow`.
    #[sea_orm(string_value = "allow")]
    Allow,
    /// Reject the request. Stored as `deny`.
    #[sea_orm(string_value = "deny")]
    Deny,
    /// Hold the request until a human approves it. Stored as `require_approval`.
    #[sea_orm(string_value = "require_approval")]
    RequireApproval,
}

/// Which requests a policy considers, stored as JSON in `policies.scope`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, FromJsonQueryResult)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PolicyScope {
    /// Every request of the tenant.
    #[default]
    Tenant,
    /// Requests of any listed team, project or agent.
    Targets {
        /// Teams whose agents' requests match.
        #[serde(default)]
        teams: Vec<TeamId>,
        /// Projects whose requests match.
        #[serde(default)]
        projects: Vec<ProjectId>,
        /// Agents whose requests match.
        #[serde(default)]
        agents: Vec<AgentId>,
    },
}
