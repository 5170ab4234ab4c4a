//! `roles`: a role within a tenant, granting a set of permission codes. Built-in roles: admin, finance, developer, readonly.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::id::{RoleId, TenantId};

/// A role within a tenant, granting a set of permission codes. Built-in roles: admin, finance, developer, readonly.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "roles")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: RoleId,
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// Role name, unique within the tenant.
    #[sea_orm(column_type = "String(StringLen::N(64))")]
    pub name: String,
    /// What the role is for.
    #[sea_orm(column_type = "Text")]
    pub description: Option<String>,
    /// Whether bursar created the role (built-in roles cannot be deleted).
    pub is_builtin: bool,
    /// When the row was created (UTC).
    pub created_at: DateTimeUtc,
    /// When the row was last changed (UTC).
    pub updated_at: DateTimeUtc,
}

/// Relations of `roles`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `tenant_id` → `tenants`.
    #[sea_orm(
        belongs_to = "super::tenant::Entity",
        from = "Column::TenantId",
        to = "super::tenant::Column::Id"
    )]
    Tenant,
    /// Rows of `role_permissions` pointing here.
    #[sea_orm(has_many = "super::role_permission::Entity")]
    RolePermissions,
    /// Rows of `member_roles` pointing here.
    #[sea_orm(has_many = "super::member_role::Entity")]
    MemberRoles,
    /// Rows of `approval_requests` pointing here.
    #[sea_orm(has_many = "super::approval_request::Entity")]
    ApprovalRequests,
}

impl Related<super::tenant::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tenant.def()
    }
}

impl Related<super::role_permission::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::RolePermissions.def()
    }
}

impl Related<super::member_role::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::MemberRoles.def()
    }
}

impl Related<super::approval_request::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ApprovalRequests.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
