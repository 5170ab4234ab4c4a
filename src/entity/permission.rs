//! `permissions`: a permission code such as `policies:write`. Global: the same codes exist for every tenant.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::id::PermissionId;

/// A permission code such as `policies:write`. Global: the same codes exist for every tenant.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "permissions")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: PermissionId,
    /// The code, `resource:action`, unique.
    #[sea_orm(column_type = "String(StringLen::N(100))")]
    pub code: String,
    /// What the permission allows.
    #[sea_orm(column_type = "Text")]
    pub description: Option<String>,
    /// When the row was created (UTC).
    pub created_at: DateTimeUtc,
    /// When the row was last changed (UTC).
    pub updated_at: DateTimeUtc,
}

/// Relations of `permissions`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// Rows of `role_permissions` pointing here.
    #[sea_orm(has_many = "super::role_permission::Entity")]
    RolePermissions,
}

impl Related<super::role_permission::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::RolePermissions.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
