//! `teams`: a team: an optional grouping of agents (and of budgets and policies scoped to it).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::id::{TeamId, TenantId};

/// A team: an optional grouping of agents (and of budgets and policies scoped to it).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "teams")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: TeamId,
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// Display name.
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub name: String,
    /// URL-safe identifier, unique within the tenant.
    #[sea_orm(column_type = "String(StringLen::N(64))")]
    pub slug: String,
    /// What the team does.
    #[sea_orm(column_type = "Text")]
    pub description: Option<String>,
    /// When the row was created (UTC).
    pub created_at: DateTimeUtc,
    /// When the row was last changed (UTC).
    pub updated_at: DateTimeUtc,
}

/// Relations of `teams`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `tenant_id` → `tenants`.
    #[sea_orm(
        belongs_to = "super::tenant::Entity",
        from = "Column::TenantId",
        to = "super::tenant::Column::Id"
    )]
    Tenant,
    /// Rows of `agents` pointing here.
    #[sea_orm(has_many = "super::agent::Entity")]
    Agents,
    /// Rows of `purchase_intents` pointing here.
    #[sea_orm(has_many = "super::purchase_intent::Entity")]
    PurchaseIntents,
}

impl Related<super::tenant::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tenant.def()
    }
}

impl Related<super::agent::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Agents.def()
    }
}

impl Related<super::purchase_intent::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::PurchaseIntents.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
