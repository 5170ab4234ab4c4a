//! `virtual_cards`: a single-purpose virtual card issued for an approved purchase intent.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::id::{AgentId, PurchaseIntentId, TenantId, VirtualCardId};
use crate::money::{Amount, Currency};

/// A single-purpose virtual card issued for an approved purchase intent.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "virtual_cards")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: VirtualCardId,
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// The purchase the card pays for.
    pub purchase_intent_id: PurchaseIntentId,
    /// The agent holding the card.
    pub agent_id: Option<AgentId>,
    /// Issuing provider, e.g. `stripe`.
    #[sea_orm(column_type = "String(StringLen::N(50))")]
    pub provider: String,
    /// The provider's card id, unique per tenant.
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub provider_card_id: String,
    /// Last four digits of the card number.
    #[sea_orm(column_type = "String(StringLen::N(4))")]
    pub last4: String,
    /// Expiry month, 1 to 12.
    pub exp_month: i32,
    /// Expiry year, four digits.
    pub exp_year: i32,
    /// Spending limit set at the provider.
    pub hard_limit: Amount,
    /// Card currency.
    pub currency: Currency,
    /// Card state.
    pub status: VirtualCardStatus,
    /// When bursar closes the card if unused.
    pub expires_at: Option<DateTimeUtc>,
    /// When the row was created (UTC).
    pub created_at: DateTimeUtc,
    /// When the row was last changed (UTC).
    pub updated_at: DateTimeUtc,
}

/// Relations of `virtual_cards`.
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
    /// `agent_id` → `agents`.
    #[sea_orm(
        belongs_to = "super::agent::Entity",
        from = "Column::AgentId",
        to = "super::agent::Column::Id"
    )]
    Agent,
    /// Rows of `transactions` pointing here.
    #[sea_orm(has_many = "super::transaction::Entity")]
    Transactions,
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

impl Related<super::agent::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Agent.def()
    }
}

impl Related<super::transaction::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Transactions.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

/// A virtual card's state. bursar records every card as `active` and never
/// changes it; the other states are for the host to write as its provider
/// reports them.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum VirtualCardStatus {
    /// Usable. Stored as `active`.
    #[sea_orm(string_value = "active")]
    Active,
    /// Temporarily blocked. Stored as `frozen`.
    #[sea_orm(string_value = "frozen")]
    Frozen,
    /// Single-use card already charged. Stored as `used`.
    #[sea_orm(string_value = "used")]
    Used,
    /// Past its expiry. Stored as `expired`.
    #[sea_orm(string_value = "expired")]
    Expired,
    /// Cancelled for good. Stored as `closed`.
    #[sea_orm(string_value = "closed")]
    Closed,
}
