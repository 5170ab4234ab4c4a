//! `refunds`: one refund the provider (or the host) reported, by its refund id. The id is unique per tenant, so a refund delivered again is recognised whether or not a budget window recorded it.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::id::{RefundId, ReservationId, TenantId, TransactionId};
use crate::money::{Amount, Currency};

/// One refund, by its refund id (unique per tenant).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "refunds")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: RefundId,
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// The reservation whose spending it gives back.
    pub reservation_id: Option<ReservationId>,
    /// The provider charge it refunds, when it came from a webhook.
    pub transaction_id: Option<TransactionId>,
    /// The provider's (or host's) refund id, unique per tenant.
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub provider_refund_id: String,
    /// The refunded amount.
    pub amount: Amount,
    /// Its currency.
    pub currency: Currency,
    /// When the refund was recorded (UTC).
    pub created_at: DateTimeUtc,
}

/// Relations of `refunds`.
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
    /// `transaction_id` → `transactions`.
    #[sea_orm(
        belongs_to = "super::transaction::Entity",
        from = "Column::TransactionId",
        to = "super::transaction::Column::Id"
    )]
    Transaction,
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

impl Related<super::transaction::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Transaction.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
