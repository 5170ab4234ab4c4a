//! `transactions`: a card transaction reported by the provider (webhook); the provider charge id makes webhook delivery idempotent.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::id::{PurchaseIntentId, ReservationId, TenantId, TransactionId, VirtualCardId};
use crate::money::{Amount, Currency};

/// A card transaction reported by the provider (webhook); the provider charge id makes webhook delivery idempotent.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "transactions")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: TransactionId,
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// The purchase it settles.
    pub purchase_intent_id: Option<PurchaseIntentId>,
    /// The card charged.
    pub virtual_card_id: Option<VirtualCardId>,
    /// The hold it captures.
    pub reservation_id: Option<ReservationId>,
    /// The provider's charge id, unique per tenant.
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub provider_charge_id: String,
    /// The provider's authorization id.
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub provider_authorization_id: Option<String>,
    /// Charged amount.
    pub amount: Amount,
    /// Charged currency.
    pub currency: Currency,
    /// Merchant as reported by the provider.
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub merchant_name: Option<String>,
    /// Merchant category code as reported.
    pub mcc: Option<i32>,
    /// Settlement state.
    pub status: TransactionStatus,
    /// How much of the charge was refunded so far (sum of its refunds).
    pub refunded_amount: Amount,
    /// Why the charge needs a human's attention (a charge for an intent that
    /// is not approved, or a conflicting repeat delivery), if it does.
    #[sea_orm(column_type = "String(StringLen::N(500))")]
    pub attention: Option<String>,
    /// When the charge settled.
    pub settled_at: Option<DateTimeUtc>,
    /// The provider's event as received, kept for reconciliation.
    #[sea_orm(column_type = "JsonBinary")]
    pub raw_event: Option<Json>,
    /// When the row was created (UTC).
    pub created_at: DateTimeUtc,
    /// When the row was last changed (UTC).
    pub updated_at: DateTimeUtc,
}

/// Relations of `transactions`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `tenant_id` → `tenants`.
    #[sea_orm(
        belongs_to = "super::tenant::Entity",
        from = "Column::TenantId",
        to = "super::tenant::Column::Id"
    )]
    Tenant,
    /// `purchase_intent_id` → `purchase_intents`.
    #[sea_orm(
        belongs_to = "super::purchase_intent::Entity",
        from = "Column::PurchaseIntentId",
        to = "super::purchase_intent::Column::Id"
    )]
    PurchaseIntent,
    /// `virtual_card_id` → `virtual_cards`.
    #[sea_orm(
        belongs_to = "super::virtual_card::Entity",
        from = "Column::VirtualCardId",
        to = "super::virtual_card::Column::Id"
    )]
    VirtualCard,
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

impl Related<super::purchase_intent::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::PurchaseIntent.def()
    }
}

impl Related<super::virtual_card::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::VirtualCard.def()
    }
}

impl Related<super::reservation::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Reservation.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

/// A card transaction's state.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(24))")]
#[serde(rename_all = "snake_case")]
pub enum TransactionStatus {
    /// Authorized, not captured yet. Stored as `authorized`.
    #[sea_orm(string_value = "authorized")]
    Authorized,
    /// Captured (settled). Stored as `captured`.
    #[sea_orm(string_value = "captured")]
    Captured,
    /// Declined or failed. Stored as `failed`.
    #[sea_orm(string_value = "failed")]
    Failed,
    /// Part of the captured amount was refunded. Stored as
    /// `partially_refunded`.
    #[sea_orm(string_value = "partially_refunded")]
    PartiallyRefunded,
    /// The whole captured amount was refunded. Stored as `refunded`.
    #[sea_orm(string_value = "refunded")]
    Refunded,
    /// Settled at the provider for a purchase intent that is not approved
    /// (pending approval, rejected or expired): recorded, never posted to the
    /// budgets on its own. See the `attention` column. Stored as
    /// `needs_attention`.
    #[sea_orm(string_value = "needs_attention")]
    NeedsAttention,
}
