//! `reservation_lines`: one budget window's share of a reservation.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::id::{BudgetId, BudgetWindowId, ReservationId, ReservationLineId, TenantId};
use crate::money::Amount;

/// One budget window's share of a reservation.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "reservation_lines")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: ReservationLineId,
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// The reservation.
    pub reservation_id: ReservationId,
    /// The budget.
    pub budget_id: BudgetId,
    /// The window held against.
    pub window_id: BudgetWindowId,
    /// Amount held on the window.
    pub amount: Amount,
    /// Amount captured on the window.
    pub captured_amount: Amount,
    /// Amount refunded on the window.
    pub refunded_amount: Amount,
    /// When the row was created (UTC).
    pub created_at: DateTimeUtc,
}

/// Relations of `reservation_lines`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `tenant_id` → `tenants`.
    #[sea_orm(
        belongs_to = "super::tenant::Entity",
        from = "Column::TenantId",
        to = "super::tenant::Column::Id"
    )]
    Tenant,
    /// `reservation_id` → `reservations`.
    #[sea_orm(
        belongs_to = "super::reservation::Entity",
        from = "Column::ReservationId",
        to = "super::reservation::Column::Id"
    )]
    Reservation,
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
}

impl Related<super::tenant::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tenant.def()
    }
}

impl Related<super::reservation::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Reservation.def()
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

impl ActiveModelBehavior for ActiveModel {}
