//! `approval_decisions`: one approver's vote on an approval request.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::id::{ApprovalDecisionId, ApprovalRequestId, TenantId, UserId};

/// One approver's vote on an approval request.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "approval_decisions")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: ApprovalDecisionId,
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// The request voted on.
    pub approval_request_id: ApprovalRequestId,
    /// The voting member.
    pub approver_id: UserId,
    /// The vote.
    pub decision: ApprovalVote,
    /// The approver's note.
    #[sea_orm(column_type = "Text")]
    pub comment: Option<String>,
    /// When the row was created (UTC).
    pub created_at: DateTimeUtc,
}

/// Relations of `approval_decisions`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `tenant_id` → `tenants`.
    #[sea_orm(
        belongs_to = "super::tenant::Entity",
        from = "Column::TenantId",
        to = "super::tenant::Column::Id"
    )]
    Tenant,
    /// `approval_request_id` → `approval_requests`.
    #[sea_orm(
        belongs_to = "super::approval_request::Entity",
        from = "Column::ApprovalRequestId",
        to = "super::approval_request::Column::Id"
    )]
    ApprovalRequest,
}

impl Related<super::tenant::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tenant.def()
    }
}

impl Related<super::approval_request::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ApprovalRequest.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

/// One approver's vote.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum ApprovalVote {
    /// Approve. Stored as `approve`.
    #[sea_orm(string_value = "approve")]
    Approve,
    /// Reject. Stored as `reject`.
    #[sea_orm(string_value = "reject")]
    Reject,
}
