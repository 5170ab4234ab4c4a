//! `event_consumers`: one delivery cursor per tenant and consumer name.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::id::{EventConsumerId, TenantId};

/// A consumer's position in a tenant's events.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "event_consumers")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: EventConsumerId,
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// The consumer's name, unique per tenant.
    #[sea_orm(column_type = "String(StringLen::N(100))")]
    pub name: String,
    /// Every event up to this sequence number is acknowledged.
    pub acked_seq: i64,
    /// Every event up to this sequence number has been handed out.
    pub delivered_seq: i64,
    /// Until then, the events after `acked_seq` handed out are leased to a
    /// poller; afterwards they are handed out again.
    pub lease_until: Option<DateTimeUtc>,
    /// When the row was created (UTC).
    pub created_at: DateTimeUtc,
    /// When the row was last changed (UTC).
    pub updated_at: DateTimeUtc,
}

/// Relations of `event_consumers`.
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
