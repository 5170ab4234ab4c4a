//! `agent_api_keys`: an API key an agent authenticates with. Only the SHA-256 hash is stored; several live keys per agent allow rotation.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::id::{AgentId, ApiKeyId, TenantId, UserId};

/// An API key an agent authenticates with. Only the SHA-256 hash is stored; several live keys per agent allow rotation.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "agent_api_keys")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: ApiKeyId,
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// The agent the key authenticates.
    pub agent_id: AgentId,
    /// The key's first characters, shown to identify it.
    #[sea_orm(column_type = "String(StringLen::N(16))")]
    pub prefix: String,
    /// Lower-case hex SHA-256 of the whole key, unique across all tenants.
    #[sea_orm(column_type = "String(StringLen::N(64))")]
    pub key_hash: String,
    /// A human label, e.g. `ci`.
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub label: Option<String>,
    /// The user who issued the key.
    pub created_by: Option<UserId>,
    /// After this instant the key is refused.
    pub expires_at: Option<DateTimeUtc>,
    /// When the key was revoked; a revoked key is refused.
    pub revoked_at: Option<DateTimeUtc>,
    /// When the key last authenticated a request.
    pub last_used_at: Option<DateTimeUtc>,
    /// When the row was created (UTC).
    pub created_at: DateTimeUtc,
}

/// Relations of `agent_api_keys`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `tenant_id` → `tenants`.
    #[sea_orm(
        belongs_to = "super::tenant::Entity",
        from = "Column::TenantId",
        to = "super::tenant::Column::Id"
    )]
    Tenant,
    /// `agent_id` → `agents`.
    #[sea_orm(
        belongs_to = "super::agent::Entity",
        from = "Column::AgentId",
        to = "super::agent::Column::Id"
    )]
    Agent,
}

impl Related<super::tenant::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tenant.def()
    }
}

impl Related<super::agent::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Agent.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
