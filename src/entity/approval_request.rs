//! `approval_requests`: a request for human approval of a purchase intent, tool call or run, decided by one or more approvers under a rule.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use super::json::{ReasonList, UserIdList};
use crate::id::{AgentId, ApprovalRequestId, ReservationId, RoleId, TenantId, UserId};

/// A request for human approval of a purchase intent (of any action kind: a
/// purchase, a tool call, an LLM call or a host action), decided by one or
/// more approvers under a rule.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "approval_requests")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: ApprovalRequestId,
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// What is to be approved.
    pub subject_kind: ApprovalSubjectKind,
    /// The id of the subject: the purchase intent, for every request bursar
    /// opens.
    pub subject_id: Uuid,
    /// The agent whose request needs approval.
    pub agent_id: Option<AgentId>,
    /// The hold kept while the request is pending.
    pub reservation_id: Option<ReservationId>,
    /// How votes combine.
    pub rule: ApprovalRule,
    /// Approvals needed: `n` under `any_n`, 1 under `single`, and under
    /// `unanimous` and `majority` the count for the eligible approvers at
    /// creation. For those two it is a record only: each vote recounts the
    /// eligible approvers who still count (see [`ApprovalRule`]).
    pub required_approvals: i32,
    /// Members with this role may vote; `None` for any member with the approve permission.
    pub approver_role_id: Option<RoleId>,
    /// The members who may vote, fixed when the request was created (and
    /// extended by escalation).
    #[sea_orm(column_type = "JsonBinary")]
    pub eligible_approvers: UserIdList,
    /// Members with this role (and the approve permission) become eligible at `escalate_at`.
    pub escalation_role_id: Option<RoleId>,
    /// Lifecycle state.
    pub status: ApprovalStatus,
    /// Why approval is needed (the matching policies).
    #[sea_orm(column_type = "JsonBinary")]
    pub reasons: ReasonList,
    /// The agent that made the request.
    pub requested_by: Option<AgentId>,
    /// An undecided request expires at this instant.
    pub expires_at: DateTimeUtc,
    /// When an undecided request is escalated.
    pub escalate_at: Option<DateTimeUtc>,
    /// Always `None`: escalation makes the escalation role's members
    /// eligible (they are added to `eligible_approvers`) and names no single
    /// user.
    pub escalated_to: Option<UserId>,
    /// When the outcome was reached.
    pub decided_at: Option<DateTimeUtc>,
    /// When the row was created (UTC).
    pub created_at: DateTimeUtc,
    /// When the row was last changed (UTC).
    pub updated_at: DateTimeUtc,
}

/// Relations of `approval_requests`.
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
    /// `reservation_id` → `reservations`.
    #[sea_orm(
        belongs_to = "super::reservation::Entity",
        from = "Column::ReservationId",
        to = "super::reservation::Column::Id"
    )]
    Reservation,
    /// `approver_role_id` → `roles`.
    #[sea_orm(
        belongs_to = "super::role::Entity",
        from = "Column::ApproverRoleId",
        to = "super::role::Column::Id"
    )]
    Role,
    /// Rows of `purchase_intents` pointing here.
    #[sea_orm(has_many = "super::purchase_intent::Entity")]
    PurchaseIntents,
    /// Rows of `approval_decisions` pointing here.
    #[sea_orm(has_many = "super::approval_decision::Entity")]
    ApprovalDecisions,
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
        Relation::Reservation.def()
    }
}

impl Related<super::role::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Role.def()
    }
}

impl Related<super::purchase_intent::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::PurchaseIntents.def()
    }
}

impl Related<super::approval_decision::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ApprovalDecisions.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

/// What an approval request is about.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[serde(rename_all = "snake_case")]
pub enum ApprovalSubjectKind {
    /// A purchase intent. Stored as `purchase_intent`.
    #[sea_orm(string_value = "purchase_intent")]
    PurchaseIntent,
    /// A tool call of the host. bursar opens no request of this kind (a tool
    /// call is approved through its purchase intent). Stored as `tool_call`.
    #[sea_orm(string_value = "tool_call")]
    ToolCall,
    /// An agent run. bursar opens no request of this kind. Stored as `run`.
    #[sea_orm(string_value = "run")]
    Run,
}

/// How approvers' votes combine.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum ApprovalRule {
    /// One approval decides. Stored as `single`.
    #[sea_orm(string_value = "single")]
    Single,
    /// `required_approvals` approvals approve; rejected once they can no longer be reached. Stored as `any_n`.
    #[sea_orm(string_value = "any_n")]
    AnyN,
    /// Every eligible approver who still counts must approve; one rejection
    /// rejects. An eligible approver stops counting once no longer an active
    /// member of the tenant, unless they already voted. Stored as `unanimous`.
    #[sea_orm(string_value = "unanimous")]
    Unanimous,
    /// More than half of the eligible approvers who still count (as under
    /// `unanimous`) approve; rejected once that can no longer happen, so a
    /// tie rejects. Stored as `majority`.
    #[sea_orm(string_value = "majority")]
    Majority,
}

/// An approval request's state.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Waiting for votes. Stored as `pending`.
    #[sea_orm(string_value = "pending")]
    Pending,
    /// Approved. Stored as `approved`.
    #[sea_orm(string_value = "approved")]
    Approved,
    /// Rejected. Stored as `rejected`.
    #[sea_orm(string_value = "rejected")]
    Rejected,
    /// Not decided in time. Stored as `expired`.
    #[sea_orm(string_value = "expired")]
    Expired,
    /// Withdrawn. Stored as `cancelled`.
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}
