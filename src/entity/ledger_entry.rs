//! `ledger_entries`: an append-only journal entry of one movement of one bucket of a budget window. A window's `spent` and `reserved` equal the sums of its entries (debits minus credits).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::id::{BudgetId, BudgetWindowId, LedgerEntryId, ReservationId, TenantId};
use crate::money::{Amount, Currency};

/// An append-only journal entry of one movement of one bucket of a budget window. A window's `spent` and `reserved` equal the sums of its entries (debits minus credits).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "ledger_entries")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: LedgerEntryId,
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// The budget.
    pub budget_id: BudgetId,
    /// The window moved.
    pub window_id: BudgetWindowId,
    /// The reservation that caused the movement.
    pub reservation_id: Option<ReservationId>,
    /// The operation.
    pub entry_type: LedgerEntryType,
    /// The balance moved.
    pub bucket: LedgerBucket,
    /// Debit increases the bucket, credit decreases it.
    pub direction: LedgerDirection,
    /// Amount moved (never negative; the direction gives the sign).
    pub amount: Amount,
    /// The budget's currency.
    pub currency: Currency,
    /// Host-defined category, e.g. `ai_usage` or `tools`.
    #[sea_orm(column_type = "String(StringLen::N(64))")]
    pub category: Option<String>,
    /// External reference, e.g. a refund id.
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub reference: Option<String>,
    /// Free-text note.
    #[sea_orm(column_type = "Text")]
    pub description: Option<String>,
    /// When the movement happened (may precede `created_at` for imported entries).
    pub occurred_at: DateTimeUtc,
    /// When the row was created (UTC).
    pub created_at: DateTimeUtc,
}

/// Relations of `ledger_entries`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `tenant_id` → `tenants`.
    #[sea_orm(
        belongs_to = "super::tenant::Entity",
        from = "Column::TenantId",
        to = "super::tenant::Column::Id"
    )]
    Tenant,
    /// `budget_id` → `budgets`.
    #[sea_orm(
        belongs_to = "super::budget::Entity",
        from = "Column::BudgetId",
        to = "super::budget::Column::Id"
    )]
    Budget,
    /// `window_id` → `budget_windows`.
    #[sea_orm(
        belongs_to = "super::budget_window::Entity",
        from = "Column::WindowId",
        to = "super::budget_window::Column::Id"
    )]
    BudgetWindow,
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

impl Related<super::budget::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Budget.def()
    }
}

impl Related<super::budget_window::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::BudgetWindow.def()
    }
}

impl Related<super::reservation::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Reservation.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

/// The operation a ledger entry records.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum LedgerEntryType {
    /// A hold was placed. Stored as `reserve`.
    #[sea_orm(string_value = "reserve")]
    Reserve,
    /// A hold was returned. Stored as `release`.
    #[sea_orm(string_value = "release")]
    Release,
    /// A hold expired. Stored as `expire`.
    #[sea_orm(string_value = "expire")]
    Expire,
    /// A hold was captured. Stored as `capture`.
    #[sea_orm(string_value = "capture")]
    Capture,
    /// Captured spending was refunded. Stored as `refund`.
    #[sea_orm(string_value = "refund")]
    Refund,
    /// Settled spending beyond what the hold or the budget had room for: a
    /// charge is a fact and is always posted, and the part that did not fit
    /// is posted under this type so that the excess is visible. Stored as
    /// `overspend`.
    #[sea_orm(string_value = "overspend")]
    Overspend,
    /// A manual correction. Stored as `adjust`.
    #[sea_orm(string_value = "adjust")]
    Adjust,
}

/// Which balance of a budget window an entry moves.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum LedgerBucket {
    /// The `spent` balance. Stored as `spent`.
    #[sea_orm(string_value = "spent")]
    Spent,
    /// The `reserved` balance. Stored as `reserved`.
    #[sea_orm(string_value = "reserved")]
    Reserved,
}

/// Whether an entry increases or decreases its bucket.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum LedgerDirection {
    /// Increases the bucket. Stored as `debit`.
    #[sea_orm(string_value = "debit")]
    Debit,
    /// Decreases the bucket. Stored as `credit`.
    #[sea_orm(string_value = "credit")]
    Credit,
}
