//! `usage_records`: metered usage of an LLM (or other priced service) by an agent.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use super::json::Metadata;
use crate::id::{AgentId, ReservationId, RunId, TenantId, UsageRecordId};
use crate::money::{Amount, Currency};

/// Metered usage of an LLM (or other priced service) by an agent.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "usage_records")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: UsageRecordId,
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// The agent.
    pub agent_id: Option<AgentId>,
    /// The run.
    pub run_id: Option<RunId>,
    /// The hold the cost was captured from.
    pub reservation_id: Option<ReservationId>,
    /// Provider, e.g. `anthropic`.
    #[sea_orm(column_type = "String(StringLen::N(50))")]
    pub provider: String,
    /// Model identifier.
    #[sea_orm(column_type = "String(StringLen::N(100))")]
    pub model: String,
    /// Input tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Input tokens served from the provider's cache (part of `input_tokens`).
    pub cached_input_tokens: i64,
    /// Reasoning tokens (billed as the model's reasoning price).
    pub reasoning_tokens: i64,
    /// How long the call took, in milliseconds, if known.
    pub latency_ms: Option<i64>,
    /// The metered call's purchase intent (its handle), unique per tenant.
    pub purchase_intent_id: Option<crate::id::PurchaseIntentId>,
    /// Cost (may have more decimals than the currency's minor unit).
    pub cost: Amount,
    /// Currency of the cost.
    pub currency: Currency,
    /// Whether the tenant's own provider key was used.
    pub is_byok: bool,
    /// When the usage happened.
    pub occurred_at: DateTimeUtc,
    /// Host-defined key/value labels.
    #[sea_orm(column_type = "JsonBinary")]
    pub metadata: Metadata,
    /// When the row was created (UTC).
    pub created_at: DateTimeUtc,
}

/// Relations of `usage_records`.
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
    /// `run_id` → `agent_runs`.
    #[sea_orm(
        belongs_to = "super::agent_run::Entity",
        from = "Column::RunId",
        to = "super::agent_run::Column::Id"
    )]
    AgentRun,
    /// `reservation_id` → `reservations`.
    #[sea_orm(
        belongs_to = "super::reservation::Entity",
        from = "Column::ReservationId",
        to = "super::reservation::Column::Id"
    )]
    Reservation,
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

impl Related<super::agent_run::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AgentRun.def()
    }
}

impl Related<super::reservation::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Reservation.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
