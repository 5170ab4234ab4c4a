//! Policies of one tenant, validated on write, compiled once and cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, FromQueryResult,
    QueryFilter, QuerySelect, Set,
};

use sea_orm::sea_query::{Expr, Func, Query, SelectStatement};

use crate::entity::{agent, merchant, model_price, policy, tenant};
use crate::id::{AgentId, PolicyId, TenantId};
use crate::page::list_page;
use crate::page::{Page, PageRequest};
use crate::policy::{CompiledPolicies, DefaultEffect, Policy, PolicyScope};
use crate::store::agents::{AgentRepository, Agents};
use crate::store::repo::{Ctx, join_prefixed};
use crate::store::teams::{ProjectRepository, Projects, TeamRepository, Teams};
use crate::{Error, Result};

/// What identifies one version of a tenant's policy set: how many policies
/// there are, the sum of their versions (every update bumps one), the newest
/// change time, and the tenant's default effect. A create or delete changes
/// the count, an update the sum, so a write through any process is seen by
/// every other on its next call. (The one sequence it cannot tell apart is a
/// delete followed by a create of the same version within one tick of the
/// clock, which only a stopped test clock produces.)
pub(crate) type Stamp = (i64, i64, Option<DateTime<Utc>>, DefaultEffect);

/// Compiled policy sets, per tenant, shared by every clone of a store.
#[derive(Default)]
pub(crate) struct PolicyCache {
    entries: Mutex<HashMap<TenantId, (Stamp, Arc<CompiledPolicies>)>>,
}

impl PolicyCache {
    fn get(&self, tenant: TenantId, stamp: &Stamp) -> Option<Arc<CompiledPolicies>> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(&tenant)
            .filter(|(s, _)| s == stamp)
            .map(|(_, c)| Arc::clone(c))
    }

    fn put(&self, tenant: TenantId, stamp: Stamp, compiled: Arc<CompiledPolicies>) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.insert(tenant, (stamp, compiled));
    }

    pub(crate) fn invalidate(&self, tenant: TenantId) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.remove(&tenant);
    }
}

impl std::fmt::Debug for PolicyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PolicyCache")
    }
}

/// Policies of one tenant.
#[async_trait]
pub trait PolicyRepository {
    /// Validates and stores a policy. Every team, project and agent its scope
    /// names must be this tenant's.
    ///
    /// # Errors
    /// [`Error::InvalidPolicy`] naming the JSON path and value;
    /// [`Error::NotFound`] for a scope id this tenant does not have;
    /// [`Error::Conflict`] when the id is taken.
    async fn create(&self, policy: Policy) -> Result<Policy>;
    /// One policy.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    async fn get(&self, id: PolicyId) -> Result<Policy>;
    /// Policies, oldest first; the status filter is `enabled` or `disabled`.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad page or status.
    async fn list(&self, page: PageRequest) -> Result<Page<Policy>>;
    /// Replaces a policy (same id), bumping its version.
    ///
    /// # Errors
    /// As [`PolicyRepository::create`], and [`Error::NotFound`].
    async fn update(&self, policy: Policy) -> Result<Policy>;
    /// Turns a policy on or off.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    async fn set_enabled(&self, id: PolicyId, enabled: bool) -> Result<Policy>;
    /// Deletes a policy that no recorded decision names. A policy that
    /// rejected something stays, so the blocked attempts keep pointing at it:
    /// disable it instead.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Conflict`] when a blocked attempt names it.
    async fn delete(&self, id: PolicyId) -> Result<()>;
    /// The tenant's policies compiled for evaluation; cached, and recompiled
    /// after any change.
    ///
    /// # Errors
    /// [`Error::Database`]; [`Error::InvalidPolicy`] if a stored policy no
    /// longer validates.
    async fn compiled(&self) -> Result<Arc<CompiledPolicies>>;
}

/// The SeaORM [`PolicyRepository`]. Get it from
/// [`TenantScope::policies`](crate::store::TenantScope::policies).
#[derive(Debug)]
pub struct Policies<'a> {
    ctx: Ctx<'a>,
    cache: &'a PolicyCache,
}

fn to_policy(row: policy::Model) -> Result<Policy> {
    let scope: PolicyScope =
        serde_json::from_value(row.scope).map_err(|e| Error::InvalidPolicy {
            path: "scope".into(),
            reason: format!("stored scope of policy {} does not parse: {e}", row.id),
        })?;
    let condition = serde_json::from_value(row.conditions).map_err(|e| Error::InvalidPolicy {
        path: "condition".into(),
        reason: format!("stored condition of policy {} does not parse: {e}", row.id),
    })?;
    let approval = row
        .approval
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| Error::InvalidPolicy {
            path: "approval".into(),
            reason: format!(
                "stored approval settings of policy {} do not parse: {e}",
                row.id
            ),
        })?;
    Ok(Policy {
        id: row.id,
        name: row.name,
        scope,
        effect: row.effect,
        priority: row.priority,
        enabled: row.enabled,
        reason_code: row.reason_code,
        message: row.message,
        condition,
        approval,
    })
}

fn json_of<T: serde::Serialize>(path: &str, value: &T) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| Error::InvalidPolicy {
        path: path.into(),
        reason: e.to_string(),
    })
}

impl<'a> Policies<'a> {
    pub(crate) fn new(ctx: Ctx<'a>, cache: &'a PolicyCache) -> Self {
        Self { ctx, cache }
    }

    async fn check_scope(&self, scope: &PolicyScope) -> Result<()> {
        if let PolicyScope::Principals {
            teams,
            projects,
            agents,
        } = scope
        {
            for id in teams {
                Teams::new(self.ctx.reborrow()).get(*id).await?;
            }
            for id in projects {
                Projects::new(self.ctx.reborrow()).get(*id).await?;
            }
            for id in agents {
                Agents::new(self.ctx.reborrow()).get(*id).await?;
            }
        }
        Ok(())
    }

    async fn row(&self, id: PolicyId) -> Result<policy::Model> {
        policy::Entity::find()
            .filter(policy::Column::TenantId.eq(self.ctx.tenant))
            .filter(policy::Column::Id.eq(id))
            .one(&self.ctx.db)
            .await?
            .ok_or_else(|| Error::not_found(PolicyId::ENTITY, id))
    }

    async fn stamp(&self) -> Result<Stamp> {
        let read = tenant_and_stamp(&self.ctx.db, self.ctx.tenant, Joined::default())
            .await?
            .ok_or_else(|| Error::not_found(TenantId::ENTITY, self.ctx.tenant))?;
        Ok(read.stamp)
    }
}

/// A tenant row with the stamp of its policies, and what [`Joined`] asked
/// for, as one statement returns them.
#[derive(FromQueryResult)]
struct TenantWithStamp {
    #[sea_orm(nested)]
    tenant: tenant::Model,
    policy_count: i64,
    policy_versions: Option<i64>,
    policies_changed: Option<DateTime<Utc>>,
    #[sea_orm(nested(prefix = "agent_"))]
    agent: Option<agent::Model>,
    #[sea_orm(nested(prefix = "price_"))]
    price: Option<model_price::Model>,
    #[sea_orm(nested(prefix = "merchant_"))]
    merchant: Option<merchant::Model>,
}

/// The rows [`tenant_and_stamp`] reads beside the tenant's, each only when
/// asked for.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Joined<'a> {
    /// This agent of the tenant.
    pub(crate) agent: Option<AgentId>,
    /// The price in force of this provider's model at this instant.
    pub(crate) price: Option<(&'a str, &'a str, DateTime<Utc>)>,
    /// The tenant's known merchant of this normalized name
    /// ([`normalize_merchant_name`](crate::store::normalize_merchant_name)).
    pub(crate) merchant: Option<&'a str>,
}

/// What [`tenant_and_stamp`] reads.
pub(crate) struct TenantRead {
    /// The tenant row.
    pub(crate) tenant: tenant::Model,
    /// The [`Stamp`] of its policy set.
    pub(crate) stamp: Stamp,
    /// The agent asked for (`None` when it does not exist).
    pub(crate) agent: Option<agent::Model>,
    /// The model price asked for (`None` when none is in force).
    pub(crate) price: Option<model_price::Model>,
    /// The merchant asked for (`None` when the tenant never bought from it).
    pub(crate) merchant: Option<merchant::Model>,
}

/// The tenant row, the [`Stamp`] of its policy set and the rows `joined`
/// asks for, read in one statement (`None` when the tenant does not exist):
/// `SELECT tenants.*, (SELECT COUNT(id) FROM policies WHERE tenant_id = ?),
/// …, agents.* FROM tenants LEFT JOIN agents ON agents.tenant_id = ? AND
/// agents.id = ? WHERE tenants.id = ?`. `authorize` needs the tenant, the
/// stamp and the agent on every call. The model's price in force (a metered
/// call, `crate::store::meter::in_force`) and the merchant's history (a
/// purchase) are joined in the same way, each on the tenant's own id.
pub(crate) async fn tenant_and_stamp(
    conn: &impl ConnectionTrait,
    id: TenantId,
    joined: Joined<'_>,
) -> Result<Option<TenantRead>> {
    let of_policies = |expr: Expr| -> Expr {
        let select: SelectStatement = Query::select()
            .expr(expr)
            .from(policy::Entity)
            .and_where(policy::Column::TenantId.eq(id))
            .to_owned();
        Expr::SubQuery(None, Box::new(select.into()))
    };
    let mut read = tenant::Entity::find_by_id(id)
        .column_as(of_policies(policy::Column::Id.count()), "policy_count")
        .column_as(
            of_policies(Expr::expr(Func::cast_as(
                Func::sum(Expr::col(policy::Column::Version)),
                "bigint",
            ))),
            "policy_versions",
        )
        .column_as(
            of_policies(policy::Column::UpdatedAt.max()),
            "policies_changed",
        );
    // Each joined on the tenant's own id too, so that the statement stays on
    // one tenant's shard (docs/scaling.md).
    if let Some(agent_id) = joined.agent {
        let on = Condition::all()
            .add(agent::Column::TenantId.eq(id))
            .add(agent::Column::Id.eq(agent_id));
        read = join_prefixed::<_, agent::Entity>(read, sea_orm::JoinType::LeftJoin, on, "agent_");
    }
    if let Some((provider, model, at)) = joined.price {
        let on = crate::store::meter::in_force(id, provider, model, at);
        read = join_prefixed::<_, model_price::Entity>(
            read,
            sea_orm::JoinType::LeftJoin,
            on,
            "price_",
        );
    }
    if let Some(normalized) = joined.merchant {
        let on = Condition::all()
            .add(merchant::Column::TenantId.eq(id))
            .add(merchant::Column::NormalizedName.eq(normalized));
        read = join_prefixed::<_, merchant::Entity>(
            read,
            sea_orm::JoinType::LeftJoin,
            on,
            "merchant_",
        );
    }
    let read = read
        .into_model::<TenantWithStamp>()
        .all(conn)
        .await
        .map(crate::store::repo::first)?;
    Ok(read.map(|r| TenantRead {
        stamp: (
            r.policy_count,
            r.policy_versions.unwrap_or(0),
            r.policies_changed,
            r.tenant.default_effect,
        ),
        tenant: r.tenant,
        agent: r.agent,
        price: r.price,
        merchant: r.merchant,
    }))
}

#[async_trait]
impl PolicyRepository for Policies<'_> {
    #[tracing::instrument(level = "debug", name = "bursar.policies.create", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn create(&self, policy: Policy) -> Result<Policy> {
        crate::audit::audited_write!(
            &self.ctx,
            |ctx| {
                Policies::new(ctx, self.cache)
                    .create_unaudited(policy)
                    .await?
            },
            |p| crate::audit::AuditEntry::new("policy.created", "policy").resource_id(p.id)
        )
    }

    #[tracing::instrument(level = "debug", name = "bursar.policies.get", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn get(&self, id: PolicyId) -> Result<Policy> {
        to_policy(self.row(id).await?)
    }

    #[tracing::instrument(level = "debug", name = "bursar.policies.list", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn list(&self, page: PageRequest) -> Result<Page<Policy>> {
        let mut query = policy::Entity::find().filter(policy::Column::TenantId.eq(self.ctx.tenant));
        match page.status_filter() {
            None => {}
            Some("enabled") => query = query.filter(policy::Column::Enabled.eq(true)),
            Some("disabled") => query = query.filter(policy::Column::Enabled.eq(false)),
            Some(other) => {
                return Err(Error::invalid(
                    "status",
                    format!("{other:?} is not one of enabled, disabled"),
                ));
            }
        }
        let rows = list_page(
            &self.ctx.db,
            query,
            policy::Column::CreatedAt,
            policy::Column::Id,
            &page,
        )
        .await?;
        Ok(Page {
            items: rows
                .items
                .into_iter()
                .map(to_policy)
                .collect::<Result<_>>()?,
            next_offset: rows.next_offset,
        })
    }

    #[tracing::instrument(level = "debug", name = "bursar.policies.update", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn update(&self, policy: Policy) -> Result<Policy> {
        crate::audit::audited_write!(
            &self.ctx,
            |ctx| {
                Policies::new(ctx, self.cache)
                    .update_unaudited(policy)
                    .await?
            },
            |p| crate::audit::AuditEntry::new("policy.updated", "policy")
                .resource_id(p.id)
                .message(if p.enabled { "enabled" } else { "disabled" })
        )
    }

    #[tracing::instrument(level = "debug", name = "bursar.policies.set_enabled", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn set_enabled(&self, id: PolicyId, enabled: bool) -> Result<Policy> {
        let mut policy = self.get(id).await?;
        policy.enabled = enabled;
        self.update(policy).await
    }

    #[tracing::instrument(level = "debug", name = "bursar.policies.delete", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn delete(&self, id: PolicyId) -> Result<()> {
        crate::audit::audited_write!(
            &self.ctx,
            |ctx| { Policies::new(ctx, self.cache).delete_unaudited(id).await? },
            |_done| crate::audit::AuditEntry::new("policy.deleted", "policy").resource_id(id)
        )
    }

    #[tracing::instrument(level = "debug", name = "bursar.policies.compiled", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn compiled(&self) -> Result<Arc<CompiledPolicies>> {
        let stamp = self.stamp().await?;
        self.compiled_at(stamp).await
    }
}

impl Policies<'_> {
    /// [`PolicyRepository::compiled`] at `stamp`, for a caller that read it
    /// with the tenant row ([`tenant_and_stamp`], in the same transaction).
    pub(crate) async fn compiled_at(&self, stamp: Stamp) -> Result<Arc<CompiledPolicies>> {
        if let Some(hit) = self.cache.get(self.ctx.tenant, &stamp) {
            return Ok(hit);
        }
        let rows = policy::Entity::find()
            .filter(policy::Column::TenantId.eq(self.ctx.tenant))
            .all(&self.ctx.db)
            .await?;
        let policies = rows
            .into_iter()
            .map(to_policy)
            .collect::<Result<Vec<_>>>()?;
        let compiled = Arc::new(CompiledPolicies::compile(&policies, stamp.3)?);
        self.cache
            .put(self.ctx.tenant, stamp, Arc::clone(&compiled));
        Ok(compiled)
    }
}

/// The changes themselves; the repository's methods audit them.
impl Policies<'_> {
    async fn create_unaudited(&self, policy: Policy) -> Result<Policy> {
        crate::policy::validate(&policy)?;
        self.check_scope(&policy.scope).await?;
        let now = self.ctx.now();
        let row = policy::ActiveModel {
            id: Set(policy.id),
            tenant_id: Set(self.ctx.tenant),
            name: Set(policy.name.clone()),
            description: Set(None),
            scope: Set(json_of("scope", &policy.scope)?),
            effect: Set(policy.effect),
            priority: Set(policy.priority),
            enabled: Set(policy.enabled),
            reason_code: Set(policy.reason_code.clone()),
            message: Set(policy.message.clone()),
            conditions: Set(json_of("condition", &policy.condition)?),
            approval: Set(policy
                .approval
                .as_ref()
                .map(|a| json_of("approval", a))
                .transpose()?),
            version: Set(1),
            created_by: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        };
        row.insert(&self.ctx.db)
            .await
            .map_err(|e| match Error::from(e) {
                Error::Conflict { .. } => {
                    Error::conflict("policy", format!("id {} is taken", policy.id))
                }
                other => other,
            })?;
        self.cache.invalidate(self.ctx.tenant);
        Ok(policy)
    }

    async fn update_unaudited(&self, policy: Policy) -> Result<Policy> {
        crate::policy::validate(&policy)?;
        let current = self.row(policy.id).await?;
        self.check_scope(&policy.scope).await?;
        let version = current.version + 1;
        let mut row: policy::ActiveModel = current.into();
        row.name = Set(policy.name.clone());
        row.scope = Set(json_of("scope", &policy.scope)?);
        row.effect = Set(policy.effect);
        row.priority = Set(policy.priority);
        row.enabled = Set(policy.enabled);
        row.reason_code = Set(policy.reason_code.clone());
        row.message = Set(policy.message.clone());
        row.conditions = Set(json_of("condition", &policy.condition)?);
        row.approval = Set(policy
            .approval
            .as_ref()
            .map(|a| json_of("approval", a))
            .transpose()?);
        row.version = Set(version);
        row.updated_at = Set(self.ctx.now());
        crate::store::repo::update_owned(&self.ctx.db, row).await?;
        self.cache.invalidate(self.ctx.tenant);
        Ok(policy)
    }

    async fn delete_unaudited(&self, id: PolicyId) -> Result<()> {
        self.row(id).await?;
        policy::Entity::delete_many()
            .filter(policy::Column::TenantId.eq(self.ctx.tenant))
            .filter(policy::Column::Id.eq(id))
            .exec(&self.ctx.db)
            .await
            .map_err(|e| match e.sql_err() {
                Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_)) => Error::conflict(
                    "policy",
                    format!("policy {id} is named by recorded decisions (blocked attempts); disable it instead"),
                ),
                _ => Error::from(e),
            })?;
        self.cache.invalidate(self.ctx.tenant);
        Ok(())
    }
}
