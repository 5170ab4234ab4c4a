//! `member_roles`: assigns a role to a tenant member. Keyed by (tenant_id, user_id, role_id).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::id::{RoleId, TenantId, UserId};

/// Assigns a role to a tenant member. Keyed by (tenant_id, user_id, role_id).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "member_roles")]
pub struct Model {
    /// The tenant.
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: TenantId,
    /// The member (a row of `tenant_members`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: UserId,
    /// The role assigned.
    #[sea_orm(primary_key, auto_increment = false)]
    pub role_id: RoleId,
    /// When the row was created (UTC).
    pub created_at: DateTimeUtc,
}

/// Relations of `member_roles`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `tenant_id` → `tenants`.
    #[sea_orm(
        belongs_to = "super::tenant::Entity",
        from = "Column::TenantId",
        to = "super::tenant::Column::Id"
    )]
    Tenant,
    /// `role_id` → `roles`.
    #[sea_orm(
        belongs_to = "super::role::Entity",
        from = "Column::RoleId",
        to = "super::role::Column::Id"
    )]
    Role,
}

impl Related<super::tenant::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tenant.def()
    }
}

impl Related<super::role::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Role.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
