//! `users`: a user: a global identity that may be a member of several tenants.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::id::UserId;

/// A user: a global identity that may be a member of several tenants.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "users")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: UserId,
    /// Email address, unique across users.
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub email: String,
    /// Display name.
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub name: String,
    /// Password hash, when bursar's host authenticates users itself; `None` with external auth.
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub password_hash: Option<String>,
    /// External identity provider, e.g. `google`.
    #[sea_orm(column_type = "String(StringLen::N(50))")]
    pub auth_provider: Option<String>,
    /// The user's id at the external identity provider.
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub external_id: Option<String>,
    /// A person or a service account.
    pub kind: UserKind,
    /// Whether the user may sign in.
    pub is_active: bool,
    /// When the user consented to data processing.
    pub gdpr_consent_at: Option<DateTimeUtc>,
    /// When the row was created (UTC).
    pub created_at: DateTimeUtc,
    /// When the row was last changed (UTC).
    pub updated_at: DateTimeUtc,
}

/// Relations of `users`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// Rows of `tenant_members` pointing here.
    #[sea_orm(has_many = "super::tenant_member::Entity")]
    TenantMembers,
}

impl Related<super::tenant_member::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::TenantMembers.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

/// Whether a user is a person or a machine identity.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[serde(rename_all = "snake_case")]
pub enum UserKind {
    /// A person. Stored as `user`.
    #[sea_orm(string_value = "user")]
    User,
    /// A machine identity of the host. Stored as `service_account`.
    #[sea_orm(string_value = "service_account")]
    ServiceAccount,
}
