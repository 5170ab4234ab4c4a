//! `reservations`: a hold of an amount across one or more budget windows (its lines), later captured, released or expired.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::id::{AgentId, PurchaseIntentId, ReservationId, RunId, TenantId};
use crate::money::{Amount, Currency};

/// A hold of an amount across one or more budget windows (its lines), later captured, released or expired.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "reservations")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: ReservationId,
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// The agent the hold is for.
    pub agent_id: Option<AgentId>,
    /// The run the hold is for.
    pub run_id: Option<RunId>,
    /// The purchase intent the hold backs.
    pub purchase_intent_id: Option<PurchaseIntentId>,
    /// Caller-chosen key; a retried reserve with the same key returns the first result.
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub idempotency_key: Option<String>,
    /// Currency of the amounts.
    pub currency: Currency,
    /// Amount held.
    pub amount: Amount,
    /// Amount captured so far.
    pub captured_amount: Amount,
    /// Amount refunded after capture.
    pub refunded_amount: Amount,
    /// Lifecycle state.
    pub status: ReservationStatus,
    /// A held reservation expires (and is released) at this instant.
    pub expires_at: DateTimeUtc,
    /// When it was captured.
    pub captured_at: Option<DateTimeUtc>,
    /// When it was released or expired.
    pub released_at: Option<DateTimeUtc>,
    /// When the row was created (UTC).
    pub created_at: DateTimeUtc,
    /// When the row was last changed (UTC).
    pub updated_at: DateTimeUtc,
}

/// Relations of `reservations`.
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
    /// `purchase_intent_id` → `purchase_intents`.
    #[sea_orm(
        belongs_to = "super::purchase_intent::Entity",
        from = "Column::PurchaseIntentId",
        to = "super::purchase_intent::Column::Id"
    )]
    PurchaseIntent,
    /// Rows of `approval_requests` pointing here.
    #[sea_orm(has_many = "super::approval_request::Entity")]
    ApprovalRequests,
    /// Rows of `reservation_lines` pointing here.
    #[sea_orm(has_many = "super::reservation_line::Entity")]
    ReservationLines,
    /// Rows of `ledger_entries` pointing here.
    #[sea_orm(has_many = "super::ledger_entry::Entity")]
    LedgerEntries,
    /// Rows of `transactions` pointing here.
    #[sea_orm(has_many = "super::transaction::Entity")]
    Transactions,
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

impl Related<super::agent_run::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AgentRun.def()
    }
}

impl Related<super::purchase_intent::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::PurchaseIntent.def()
    }
}

impl Related<super::approval_request::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ApprovalRequests.def()
    }
}

impl Related<super::reservation_line::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ReservationLines.def()
    }
}

impl Related<super::ledger_entry::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::LedgerEntries.def()
    }
}

impl Related<super::transaction::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Transactions.def()
    }
}

impl Related<super::usage_record::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::UsageRecords.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

/// A reservation's lifecycle state.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    /// Amount held on the windows. Stored as `held`.
    #[sea_orm(string_value = "held")]
    Held,
    /// Moved (possibly partly) to spent; the rest released. Stored as `captured`.
    #[sea_orm(string_value = "captured")]
    Captured,
    /// Returned without spending. Stored as `released`.
    #[sea_orm(string_value = "released")]
    Released,
    /// Returned because it was not captured in time. Stored as `expired`.
    #[sea_orm(string_value = "expired")]
    Expired,
}
