//! `model_prices`: what one provider's model costs a tenant, per million tokens of each kind, from a date on. LLM metering estimates and prices calls from the row in force.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::id::{ModelPriceId, TenantId};
use crate::money::{Amount, Currency};

/// What one provider's model costs, per million tokens, from `effective_from` on.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "model_prices")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: ModelPriceId,
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// Provider, e.g. `anthropic`.
    #[sea_orm(column_type = "String(StringLen::N(50))")]
    pub provider: String,
    /// Model identifier.
    #[sea_orm(column_type = "String(StringLen::N(100))")]
    pub model: String,
    /// Currency of every price.
    pub currency: Currency,
    /// Price per million input tokens (not served from cache).
    pub input_per_million: Amount,
    /// Price per million output tokens.
    pub output_per_million: Amount,
    /// Price per million input tokens served from the provider's cache.
    pub cached_input_per_million: Amount,
    /// Price per million reasoning tokens.
    pub reasoning_per_million: Amount,
    /// From when this price applies (UTC); the latest row at or before a
    /// call's time prices it.
    pub effective_from: DateTimeUtc,
    /// When the row was created (UTC).
    pub created_at: DateTimeUtc,
}

/// Relations of `model_prices`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `tenant_id` → `tenants`.
    #[sea_orm(
        belongs_to = "super::tenant::Entity",
        from = "Column::TenantId",
        to = "super::tenant::Column::Id"
    )]
    Tenant,
}

impl Related<super::tenant::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tenant.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
