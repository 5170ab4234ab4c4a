//! `connections`: a connection to an external provider (card issuer, LLM provider, MCP server), with its credentials encrypted at rest.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use super::json::Metadata;
use crate::id::{ConnectionId, TenantId, UserId};

/// A connection to an external provider (card issuer, LLM provider, MCP server), with its credentials encrypted at rest.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "connections")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: ConnectionId,
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// Provider, e.g. `stripe`, `openai`, `mcp`.
    #[sea_orm(column_type = "String(StringLen::N(50))")]
    pub provider: String,
    /// Human label, unique per tenant and provider.
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub label: String,
    /// Whether the connection is usable.
    pub status: ConnectionStatus,
    /// How it authenticates.
    pub auth_type: AuthType,
    /// The account id at the provider (e.g. a Stripe connected account).
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub external_account_id: Option<String>,
    /// Endpoint, for MCP servers and self-hosted providers.
    #[sea_orm(column_type = "Text")]
    pub server_url: Option<String>,
    /// Envelope-encrypted credentials (never plaintext).
    #[sea_orm(column_type = "Blob")]
    pub encrypted_credentials: Vec<u8>,
    /// Version of the key that encrypted them (for rotation).
    pub key_version: i32,
    /// When the provider token expires.
    pub token_expires_at: Option<DateTimeUtc>,
    /// Provider-specific labels.
    #[sea_orm(column_type = "JsonBinary")]
    pub metadata: Metadata,
    /// The user who connected it.
    pub created_by: Option<UserId>,
    /// When the row was created (UTC).
    pub created_at: DateTimeUtc,
    /// When the row was last changed (UTC).
    pub updated_at: DateTimeUtc,
}

/// Relations of `connections`.
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

/// Whether a connection is usable.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    /// Usable. Stored as `active`.
    #[sea_orm(string_value = "active")]
    Active,
    /// The last use failed. Stored as `error`.
    #[sea_orm(string_value = "error")]
    Error,
    /// Credentials expired. Stored as `expired`.
    #[sea_orm(string_value = "expired")]
    Expired,
    /// Revoked at the provider. Stored as `revoked`.
    #[sea_orm(string_value = "revoked")]
    Revoked,
    /// Disabled by the tenant. Stored as `inactive`.
    #[sea_orm(string_value = "inactive")]
    Inactive,
}

/// How a connection authenticates.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum AuthType {
    /// OAuth 2.0 tokens. Stored as `oauth2`.
    #[sea_orm(string_value = "oauth2")]
    #[serde(rename = "oauth2")]
    OAuth2,
    /// A static API key. Stored as `api_key`.
    #[sea_orm(string_value = "api_key")]
    ApiKey,
    /// Token-based authentication (consumer + token secrets). Stored as `tba`.
    #[sea_orm(string_value = "tba")]
    Tba,
    /// No credentials. Stored as `none`.
    #[sea_orm(string_value = "none")]
    #[serde(rename = "none")]
    NoAuth,
}
