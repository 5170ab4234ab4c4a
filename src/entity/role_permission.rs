//! `role_permissions`: grants a permission code to a role. Keyed by (tenant_id, role_id, permission_id).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::id::{PermissionId, RoleId, TenantId};

/// Grants a permission code to a role. Keyed by (tenant_id, role_id, permission_id).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "role_permissions")]
pub struct Model {
    /// The tenant.
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: TenantId,
    /// The role.
    #[sea_orm(primary_key, auto_increment = false)]
    pub role_id: RoleId,
    /// The permission granted.
    #[sea_orm(primary_key, auto_increment = false)]
    pub permission_id: PermissionId,
    /// When the row was created (UTC).
    pub created_at: DateTimeUtc,
}

/// Relations of `role_permissions`.
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
    /// `permission_id` → `permissions`.
    #[sea_orm(
        belongs_to = "super::permission::Entity",
        from = "Column::PermissionId",
        to = "super::permission::Column::Id"
    )]
    Permission,
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

impl Related<super::permission::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Permission.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
