//! `agent_runs`: a run: one unit of agent work with its own caps (cost, rounds, tokens), status and kill switch.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use super::json::Metadata;
use crate::id::{AgentId, RunId, TenantId, UserId};
use crate::money::{Amount, Currency};

/// A run: one unit of agent work with its own caps (cost, rounds, tokens), status and kill switch.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "agent_runs")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: RunId,
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// The agent doing the work.
    pub agent_id: Option<AgentId>,
    /// The user who started the run, if any.
    pub started_by: Option<UserId>,
    /// What the run is for (e.g. the problem statement).
    #[sea_orm(column_type = "Text")]
    pub description: Option<String>,
    /// Lifecycle state.
    pub status: RunStatus,
    /// Currency of the cost columns.
    pub currency: Currency,
    /// Cost cap; `None` for no cap.
    pub max_cost: Option<Amount>,
    /// Round cap; `None` for no cap.
    pub max_rounds: Option<i32>,
    /// Further caps (tokens, duration, tools).
    #[sea_orm(column_type = "JsonBinary")]
    pub caps: RunCaps,
    /// What the run's finished metered LLM calls cost so far. Other costs are
    /// on the run's cost-cap budget ([`RunState`](crate::store::RunState)
    /// reads it).
    pub cost: Amount,
    /// Tokens used so far by its finished metered calls.
    pub total_tokens: i64,
    /// Actions admitted so far (approved, or sent to approval).
    pub rounds: i32,
    /// When the run started.
    pub started_at: DateTimeUtc,
    /// When the run was completed.
    pub completed_at: Option<DateTimeUtc>,
    /// When the run was killed.
    pub killed_at: Option<DateTimeUtc>,
    /// The id of the member who killed it.
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub killed_by: Option<String>,
    /// Why it was killed.
    #[sea_orm(column_type = "String(StringLen::N(500))")]
    pub kill_reason: Option<String>,
    /// Host-defined key/value labels.
    #[sea_orm(column_type = "JsonBinary")]
    pub metadata: Metadata,
    /// When the row was created (UTC).
    pub created_at: DateTimeUtc,
    /// When the row was last changed (UTC).
    pub updated_at: DateTimeUtc,
}

/// Relations of `agent_runs`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `tenant_id` → `tenants`.
    #[sea_orm(
        belongs_to = "super::tenant::Entity",
        from = "Column::TenantId",
        to = "super::tenant::Column::Id"
    )]
    Tenant,
    /// `agent_id` → `agents`.
    #[sea_orm(
        belongs_to = "super::agent::Entity",
        from = "Column::AgentId",
        to = "super::agent::Column::Id"
    )]
    Agent,
    /// Rows of `reservations` pointing here.
    #[sea_orm(has_many = "super::reservation::Entity")]
    Reservations,
    /// Rows of `purchase_intents` pointing here.
    #[sea_orm(has_many = "super::purchase_intent::Entity")]
    PurchaseIntents,
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

impl Related<super::agent::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Agent.def()
    }
}

impl Related<super::reservation::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Reservations.def()
    }
}

impl Related<super::purchase_intent::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::PurchaseIntents.def()
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

/// An agent run's lifecycle state.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Running. Stored as `active`.
    #[sea_orm(string_value = "active")]
    Active,
    /// Paused: every action naming it is refused with `RUN_EXPIRED`. bursar
    /// has no call that pauses or resumes a run; this state is for the host
    /// to write. Stored as `paused`.
    #[sea_orm(string_value = "paused")]
    Paused,
    /// Finished normally ([`Runs::complete`](crate::store::Runs::complete));
    /// every action naming it is refused with `RUN_EXPIRED`. Stored as `completed`.
    #[sea_orm(string_value = "completed")]
    Completed,
    /// Finished with an error: every action naming it is refused with
    /// `RUN_EXPIRED`. bursar has no call that marks a run failed; this state
    /// is for the host to write. Stored as `failed`.
    #[sea_orm(string_value = "failed")]
    Failed,
    /// Stopped by the kill switch ([`Runs::kill`](crate::store::Runs::kill));
    /// every action naming it is refused with `RUN_KILLED`. A cap refuses the
    /// actions that pass it and leaves the run active. Stored as `killed`.
    #[sea_orm(string_value = "killed")]
    Killed,
}

/// Caps of a run beyond cost and rounds, stored as JSON in `agent_runs.caps`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, FromJsonQueryResult)]
#[serde(default)]
pub struct RunCaps {
    /// Most tokens (input + output) the run may use.
    pub max_tokens: Option<i64>,
    /// Longest the run may last, in seconds.
    /// (Refused with `RUN_EXPIRED` once `started_at` plus this has passed.)
    pub max_duration_secs: Option<u64>,
    /// Tools the run may call; `None` for no restriction.
    pub allowed_tools: Option<Vec<String>>,
    /// Models the run may use; `None` for no restriction.
    pub allowed_models: Option<Vec<String>>,
    /// After this instant every action of the run is refused (`RUN_EXPIRED`).
    pub deadline: Option<chrono::DateTime<chrono::Utc>>,
}
