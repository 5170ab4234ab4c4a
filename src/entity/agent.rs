//! `agents`: an AI agent whose actions and spending bursar governs. Its API keys live in `agent_api_keys`.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use super::json::Metadata;
use crate::id::{AgentId, ProjectId, TeamId, TenantId, UserId};

/// An AI agent whose actions and spending bursar governs. Its API keys live in `agent_api_keys`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "agents")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: AgentId,
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// The team the agent belongs to, if any.
    pub team_id: Option<TeamId>,
    /// The project the agent works on, if any.
    pub project_id: Option<ProjectId>,
    /// Display name.
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub name: String,
    /// URL-safe identifier, unique within the tenant when set.
    #[sea_orm(column_type = "String(StringLen::N(64))")]
    pub slug: Option<String>,
    /// What the agent does.
    #[sea_orm(column_type = "Text")]
    pub description: Option<String>,
    /// Whether the agent may act.
    pub status: AgentStatus,
    /// The user who registered the agent.
    pub created_by: Option<UserId>,
    /// Host-defined key/value labels, matchable by policies.
    #[sea_orm(column_type = "JsonBinary")]
    pub metadata: Metadata,
    /// When the row was created (UTC).
    pub created_at: DateTimeUtc,
    /// When the row was last changed (UTC).
    pub updated_at: DateTimeUtc,
}

/// Relations of `agents`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `tenant_id` → `tenants`.
    #[sea_orm(
        belongs_to = "super::tenant::Entity",
        from = "Column::TenantId",
        to = "super::tenant::Column::Id"
    )]
    Tenant,
    /// `team_id` → `teams`.
    #[sea_orm(
        belongs_to = "super::team::Entity",
        from = "Column::TeamId",
        to = "super::team::Column::Id"
    )]
    Team,
    /// `project_id` → `projects`.
    #[sea_orm(
        belongs_to = "super::project::Entity",
        from = "Column::ProjectId",
        to = "super::project::Column::Id"
    )]
    Project,
    /// Rows of `agent_api_keys` pointing here.
    #[sea_orm(has_many = "super::agent_api_key::Entity")]
    AgentApiKeys,
    /// Rows of `agent_runs` pointing here.
    #[sea_orm(has_many = "super::agent_run::Entity")]
    AgentRuns,
    /// Rows of `reservations` pointing here.
    #[sea_orm(has_many = "super::reservation::Entity")]
    Reservations,
    /// Rows of `approval_requests` pointing here.
    #[sea_orm(has_many = "super::approval_request::Entity")]
    ApprovalRequests,
    /// Rows of `purchase_intents` pointing here.
    #[sea_orm(has_many = "super::purchase_intent::Entity")]
    PurchaseIntents,
    /// Rows of `virtual_cards` pointing here.
    #[sea_orm(has_many = "super::virtual_card::Entity")]
    VirtualCards,
    /// Rows of `blocked_attempts` pointing here.
    #[sea_orm(has_many = "super::blocked_attempt::Entity")]
    BlockedAttempts,
    /// Rows of `usage_records` pointing here.
    #[sea_orm(has_many = "super::usage_record::Entity")]
    UsageRecords,
}

impl Related<super::tenant::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tenant.def()
    }
}

impl Related<super::team::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Team.def()
    }
}

impl Related<super::project::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Project.def()
    }
}

impl Related<super::agent_api_key::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AgentApiKeys.def()
    }
}

impl Related<super::agent_run::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AgentRuns.def()
    }
}

impl Related<super::reservation::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Reservations.def()
    }
}

impl Related<super::approval_request::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ApprovalRequests.def()
    }
}

impl Related<super::purchase_intent::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::PurchaseIntents.def()
    }
}

impl Related<super::virtual_card::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::VirtualCards.def()
    }
}

impl Related<super::blocked_attempt::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::BlockedAttempts.def()
    }
}

impl Related<super::usage_record::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::UsageRecords.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

/// Whether an agent may act.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// May act. Stored as `active`.
    #[sea_orm(string_value = "active")]
    Active,
    /// Temporarily stopped by its owners; requests are refused. Stored as `paused`.
    #[sea_orm(string_value = "paused")]
    Paused,
    /// Stopped by an administrator; requests are refused. Stored as `suspended`.
    #[sea_orm(string_value = "suspended")]
    Suspended,
}
