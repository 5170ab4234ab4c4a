//! `purchase_intents`: a purchase an agent asked to make, with the decision taken on it.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use super::json::{Metadata, ReasonList};
use crate::id::{
    AgentId, ApprovalRequestId, ProjectId, PurchaseIntentId, ReservationId, RunId, TeamId, TenantId,
};
use crate::money::{Amount, Currency};

/// A purchase an agent asked to make, with the decision taken on it.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "purchase_intents")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: PurchaseIntentId,
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// The requesting agent.
    pub agent_id: Option<AgentId>,
    /// The agent's team at request time.
    pub team_id: Option<TeamId>,
    /// The project charged.
    pub project_id: Option<ProjectId>,
    /// The run the purchase belongs to.
    pub run_id: Option<RunId>,
    /// Caller-chosen key, unique per tenant.
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub idempotency_key: Option<String>,
    /// Requested amount.
    pub amount: Amount,
    /// Requested currency.
    pub currency: Currency,
    /// Merchant as given (for a tool call, the tool; for LLM usage, the model).
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub merchant_name: String,
    /// What the agent asked to do: `purchase`, `tool_call`, `llm_usage` or
    /// `custom:<name>`. Every governed action is recorded here, whatever its
    /// kind; only a purchase necessarily carries an amount.
    #[sea_orm(column_type = "String(StringLen::N(64))")]
    pub action_kind: String,
    /// Merchant's normalized domain.
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub merchant_domain: Option<String>,
    /// Merchant URL as given.
    #[sea_orm(column_type = "Text")]
    pub merchant_url: Option<String>,
    /// ISO 18245 merchant category code.
    pub mcc: Option<i32>,
    /// What is being bought.
    #[sea_orm(column_type = "Text")]
    pub description: Option<String>,
    /// Host-defined key/value labels, matchable by policies.
    #[sea_orm(column_type = "JsonBinary")]
    pub metadata: Metadata,
    /// Decision state.
    pub status: PurchaseIntentStatus,
    /// First reason code when rejected.
    #[sea_orm(column_type = "String(StringLen::N(64))")]
    pub rejection_code: Option<String>,
    /// First reason message when rejected.
    #[sea_orm(column_type = "Text")]
    pub rejection_reason: Option<String>,
    /// Every reason the decision gave.
    #[sea_orm(column_type = "JsonBinary")]
    pub reasons: ReasonList,
    /// The hold made when approved.
    pub reservation_id: Option<ReservationId>,
    /// The approval request when approval is required.
    pub approval_request_id: Option<ApprovalRequestId>,
    /// When the row was created (UTC).
    pub created_at: DateTimeUtc,
    /// When the row was last changed (UTC).
    pub updated_at: DateTimeUtc,
}

/// Relations of `purchase_intents`.
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
    /// `approval_request_id` → `approval_requests`.
    #[sea_orm(
        belongs_to = "super::approval_request::Entity",
        from = "Column::ApprovalRequestId",
        to = "super::approval_request::Column::Id"
    )]
    ApprovalRequest,
    /// Rows of `virtual_cards` pointing here.
    #[sea_orm(has_many = "super::virtual_card::Entity")]
    VirtualCards,
    /// Rows of `transactions` pointing here.
    #[sea_orm(has_many = "super::transaction::Entity")]
    Transactions,
    /// Rows of `blocked_attempts` pointing here.
    #[sea_orm(has_many = "super::blocked_attempt::Entity")]
    BlockedAttempts,
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

impl Related<super::approval_request::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ApprovalRequest.def()
    }
}

impl Related<super::virtual_card::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::VirtualCards.def()
    }
}

impl Related<super::transaction::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Transactions.def()
    }
}

impl Related<super::blocked_attempt::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::BlockedAttempts.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

/// A purchase intent's decision state.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[serde(rename_all = "snake_case")]
pub enum PurchaseIntentStatus {
    /// Not decided yet. Stored as `pending`.
    #[sea_orm(string_value = "pending")]
    Pending,
    /// Approved; for an action with a cost, a reservation holds the amount.
    /// Stored as `approved`.
    #[sea_orm(string_value = "approved")]
    Approved,
    /// Rejected; see the reasons. Stored as `rejected`.
    #[sea_orm(string_value = "rejected")]
    Rejected,
    /// Waiting for a human. Stored as `pending_approval`.
    #[sea_orm(string_value = "pending_approval")]
    PendingApproval,
    /// Its approval request expired undecided. (An approved intent whose
    /// reservation expires uncaptured stays `approved`.) Stored as `expired`.
    #[sea_orm(string_value = "expired")]
    Expired,
    /// Withdrawn. bursar does not write this state: cancelling an approval
    /// request rejects its intent with `APPROVAL_CANCELLED`. Stored as
    /// `cancelled`.
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}
