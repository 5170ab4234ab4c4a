//! `merchants`: a merchant the tenant has bought from (new-vendor detection).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::id::{MerchantId, TenantId};

/// A merchant the tenant has bought from (new-vendor detection).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "merchants")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: MerchantId,
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// Display name as first seen.
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub name: String,
    /// Normalized name, unique per tenant.
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub normalized_name: String,
    /// Normalized domain.
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub domain: Option<String>,
    /// First purchase.
    pub first_seen_at: DateTimeUtc,
    /// Latest purchase.
    pub last_seen_at: DateTimeUtc,
    /// Number of approved purchases.
    pub purchase_count: i64,
    /// When the row was created (UTC).
    pub created_at: DateTimeUtc,
    /// When the row was last changed (UTC).
    pub updated_at: DateTimeUtc,
}

/// Relations of `merchants`.
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
