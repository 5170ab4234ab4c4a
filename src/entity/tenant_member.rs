//! `tenant_members`: a user's membership of a tenant. Keyed by (tenant_id, user_id).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::id::{TenantId, UserId};

/// A user's membership of a tenant. Keyed by (tenant_id, user_id).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "tenant_members")]
pub struct Model {
    /// The tenant.
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: TenantId,
    /// The member.
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: UserId,
    /// The seat the member occupies.
    pub seat_type: SeatType,
    /// Invitation / activity state.
    pub status: MemberStatus,
    /// Who invited the member.
    pub invited_by: Option<UserId>,
    /// When the invitation was accepted.
    pub joined_at: Option<DateTimeUtc>,
    /// When the row was created (UTC).
    pub created_at: DateTimeUtc,
    /// When the row was last changed (UTC).
    pub updated_at: DateTimeUtc,
}

/// Relations of `tenant_members`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `tenant_id` → `tenants`.
    #[sea_orm(
        belongs_to = "super::tenant::Entity",
        from = "Column::TenantId",
        to = "super::tenant::Column::Id"
    )]
    Tenant,
    /// `user_id` → `users`.
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id"
    )]
    User,
}

impl Related<super::tenant::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tenant.def()
    }
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

/// The seat a member occupies (for the host's billing).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[serde(rename_all = "snake_case")]
pub enum SeatType {
    /// A free seat. Stored as `free`.
    #[sea_orm(string_value = "free")]
    Free,
    /// A paid seat. Stored as `pro`.
    #[sea_orm(string_value = "pro")]
    Pro,
    /// An enterprise seat. Stored as `enterprise`.
    #[sea_orm(string_value = "enterprise")]
    Enterprise,
}

/// A membership's state.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    /// Invited, not yet joined. Stored as `invited`.
    #[sea_orm(string_value = "invited")]
    Invited,
    /// A working member. Stored as `active`.
    #[sea_orm(string_value = "active")]
    Active,
    /// Barred from acting. Stored as `suspended`.
    #[sea_orm(string_value = "suspended")]
    Suspended,
}
