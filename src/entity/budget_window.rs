//! `budget_windows`: one period instance of a budget with its running totals. Invariant: `spent + reserved <= limit_amount`.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::id::{BudgetId, BudgetWindowId, TenantId};
use crate::money::Amount;

/// One period instance of a budget with its running totals. Invariant: `spent + reserved <= limit_amount`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "budget_windows")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: BudgetWindowId,
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// The budget.
    pub budget_id: BudgetId,
    /// Start of the period (inclusive), computed in the tenant's time zone.
    pub period_start: DateTimeUtc,
    /// End of the period (exclusive); `None` for a lifetime budget.
    pub period_end: Option<DateTimeUtc>,
    /// The budget's limit, copied when the window is created.
    pub limit_amount: Amount,
    /// Captured spending in the window.
    pub spent: Amount,
    /// Held, not yet captured or released.
    pub reserved: Amount,
    /// When the row was created (UTC).
    pub created_at: DateTimeUtc,
    /// When the row was last changed (UTC).
    pub updated_at: DateTimeUtc,
}

/// Relations of `budget_windows`.
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
    /// Rows of `reservation_lines` pointing here.
    #[sea_orm(has_many = "super::reservation_line::Entity")]
    ReservationLines,
    /// Rows of `ledger_entries` pointing here.
    #[sea_orm(has_many = "super::ledger_entry::Entity")]
    LedgerEntries,
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

impl ActiveModelBehavior for ActiveModel {}
