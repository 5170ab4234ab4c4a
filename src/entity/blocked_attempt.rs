//! `blocked_attempts`: a rejected request, with the reason and the policy that rejected it.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::id::{AgentId, BlockedAttemptId, PolicyId, PurchaseIntentId, RunId, TenantId};
use crate::money::{Amount, Currency};

/// A rejected request, with the reason and the policy that rejected it.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "blocked_attempts")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: BlockedAttemptId,
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// The requesting agent.
    pub agent_id: Option<AgentId>,
    /// The rejected purchase intent.
    pub purchase_intent_id: Option<PurchaseIntentId>,
    /// The policy that rejected it (none for budget or default-deny rejections).
    pub policy_id: Option<PolicyId>,
    /// The run it belonged to.
    pub run_id: Option<RunId>,
    /// Stable reason code, e.g. `MERCHANT_BLOCKED`.
    #[sea_orm(column_type = "String(StringLen::N(64))")]
    pub reason_code: String,
    /// Human explanation.
    #[sea_orm(column_type = "Text")]
    pub reason: String,
    /// Requested amount.
    pub amount: Option<Amount>,
    /// Requested currency.
    pub currency: Option<Currency>,
    /// Requested merchant.
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub merchant_name: Option<String>,
    /// When the row was created (UTC).
    pub created_at: DateTimeUtc,
}

/// Relations of `blocked_attempts`.
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
    /// `purchase_intent_id` → `purchase_intents`.
    #[sea_orm(
        belongs_to = "super::purchase_intent::Entity",
        from = "Column::PurchaseIntentId",
        to = "super::purchase_intent::Column::Id"
    )]
    PurchaseIntent,
    /// `policy_id` → `policies`.
    #[sea_orm(
        belongs_to = "super::policy::Entity",
        from = "Column::PolicyId",
        to = "super::policy::Column::Id"
    )]
    Policy,
    /// `run_id` → `agent_runs`.
    #[sea_orm(
        belongs_to = "super::agent_run::Entity",
        from = "Column::RunId",
        to = "super::agent_run::Column::Id"
    )]
    AgentRun,
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

impl Related<super::purchase_intent::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::PurchaseIntent.def()
    }
}

impl Related<super::policy::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Policy.def()
    }
}

impl Related<super::agent_run::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AgentRun.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
