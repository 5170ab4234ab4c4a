//! The only statements bursar issues that are not confined to one tenant.
//!
//! Every other statement on a tenant-owned table names its tenant: it filters
//! by `tenant_id = $n` or inserts a `tenant_id`, so that a database
//! distributed by `tenant_id` (Citus) routes it to the one shard holding the
//! tenant (`docs/scaling.md`). Three lookups cannot, because at that point no
//! tenant is known yet:
//!
//! | [`Crossing`] | statement | used by |
//! |---|---|---|
//! | `tenant_ids` | every tenant's id, from the global `tenants` table | [`Store::expire_due_all`](crate::Store::expire_due_all), [`Store::expire_and_escalate_due_all`](crate::Store::expire_and_escalate_due_all) |
//! | `key_by_hash` | the `agent_api_keys` row whose `key_hash` matches a presented secret | [`Store::authenticate_agent`](crate::Store::authenticate_agent) |
//! | `user_memberships` | one user's `tenant_members` rows in every tenant | [`UserRepository::deactivate`](crate::store::UserRepository::deactivate), [`reactivate`](crate::store::UserRepository::reactivate) |
//!
//! Each goes through [`crossing`], which marks its SQL with a leading comment
//! `/* bursar:cross-tenant:<name> */`. The statement audit
//! (`tests/statements_name_their_tenant.rs`) records every statement of a full
//! scenario and accepts a statement without a tenant only when it carries one
//! of these marks, so a new cross-tenant statement fails it until it is added
//! here and to the audit's list. What follows each lookup (sweeping a tenant,
//! checking the key, auditing the change) runs tenant by tenant.

use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
    Statement,
};

use crate::Result;
use crate::entity::{agent_api_key, tenant, tenant_member};
use crate::id::{TenantId, UserId};

/// A statement that is not confined to one tenant; see the module's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Crossing {
    /// Every tenant's id, for the sweeps.
    TenantIds,
    /// An API key found by the hash of its secret, for authentication.
    KeyByHash,
    /// A user's memberships in every tenant.
    UserMemberships,
}

impl Crossing {
    /// The name in the statement's mark.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Crossing::TenantIds => "tenant_ids",
            Crossing::KeyByHash => "key_by_hash",
            Crossing::UserMemberships => "user_memberships",
        }
    }
}

/// The one way a cross-tenant statement is built: `query` for `conn`'s
/// backend, its SQL prefixed with `/* bursar:cross-tenant:<name> */`.
pub(crate) fn crossing<Q: QueryTrait>(
    conn: &impl ConnectionTrait,
    which: Crossing,
    query: &Q,
) -> Statement {
    let mut stmt = query.build(conn.get_database_backend());
    stmt.sql = format!("/* bursar:cross-tenant:{} */ {}", which.name(), stmt.sql);
    stmt
}

/// Every tenant's id, in ascending order ([`Crossing::TenantIds`]).
pub(crate) async fn tenant_ids(conn: &impl ConnectionTrait) -> Result<Vec<TenantId>> {
    let query = tenant::Entity::find()
        .select_only()
        .column(tenant::Column::Id)
        .order_by_asc(tenant::Column::Id);
    let rows = conn
        .query_all_raw(crossing(conn, Crossing::TenantIds, &query))
        .await?;
    let mut ids = Vec::with_capacity(rows.len());
    for row in rows {
        ids.push(row.try_get_by_index::<TenantId>(0)?);
    }
    Ok(ids)
}

/// The API key whose `key_hash` is `hash`, in whichever tenant
/// ([`Crossing::KeyByHash`]).
pub(crate) async fn key_by_hash(
    conn: &impl ConnectionTrait,
    hash: &str,
) -> Result<Option<agent_api_key::Model>> {
    let query = agent_api_key::Entity::find().filter(agent_api_key::Column::KeyHash.eq(hash));
    let stmt = crossing(conn, Crossing::KeyByHash, &query);
    Ok(agent_api_key::Entity::find()
        .from_raw_sql(stmt)
        .one(conn)
        .await?)
}

/// `user`'s memberships in every tenant, by ascending tenant id
/// ([`Crossing::UserMemberships`]).
pub(crate) async fn user_memberships(
    conn: &impl ConnectionTrait,
    user: UserId,
) -> Result<Vec<tenant_member::Model>> {
    let query = tenant_member::Entity::find()
        .filter(tenant_member::Column::UserId.eq(user))
        .order_by_asc(tenant_member::Column::TenantId);
    let stmt = crossing(conn, Crossing::UserMemberships, &query);
    Ok(tenant_member::Entity::find()
        .from_raw_sql(stmt)
        .all(conn)
        .await?)
}
