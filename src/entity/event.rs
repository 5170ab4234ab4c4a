//! `events`: the transactional outbox: one row per thing the host must hear about, written in the same transaction as the change it announces.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::id::{EventId, TenantId};

/// One announced change (see `docs/events.md` for every type and its payload).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "events")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: EventId,
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// Per-tenant sequence number, starting at 1, in commit order.
    pub seq: i64,
    /// The event type, e.g. `approval.requested`.
    #[sea_orm(column_type = "String(StringLen::N(64))")]
    pub event_type: String,
    /// The payload's schema version.
    pub version: i32,
    /// What kind of row the event is about, e.g. `approval_request`.
    #[sea_orm(column_type = "String(StringLen::N(64))")]
    pub subject_type: String,
    /// The id of that row.
    pub subject_id: Option<Uuid>,
    /// Makes an event unique per tenant (e.g. one threshold crossing per
    /// budget window and threshold); `None` for events that are never deduplicated.
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub dedup_key: Option<String>,
    /// The payload, versioned JSON.
    #[sea_orm(column_type = "JsonBinary")]
    pub payload: Json,
    /// When the change committed (UTC).
    pub created_at: DateTimeUtc,
}

/// Relations of `events`.
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
