//! Who may vote on an approval request: the eligible set fixed when the
//! request is created, extended once by escalation, and counted again (less
//! the members deactivated since) when a vote is cast.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use crate::Result;
use crate::entity::approval_request;
use crate::entity::json::UserIdList;
use crate::entity::tenant_member::{self, MemberStatus};
use crate::entity::{agent, member_role, permission, role_permission, tenant};
use crate::id::{AgentId, RoleId, TenantId, UserId};
use crate::store::roles::permissions;

/// The active members of `tenant` holding `approvals:write` (through any of
/// their roles) and, when `role` is set, that role; ascending.
pub(crate) async fn eligible_members(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    role: Option<RoleId>,
) -> Result<Vec<UserId>> {
    let Some(perm) = permission::Entity::find()
        .filter(permission::Column::Code.eq(permissions::APPROVALS_WRITE))
        .one(conn)
        .await?
    else {
        return Ok(Vec::new());
    };
    let granting: BTreeSet<RoleId> = role_permission::Entity::find()
        .filter(role_permission::Column::TenantId.eq(tenant))
        .filter(role_permission::Column::PermissionId.eq(perm.id))
        .all(conn)
        .await?
        .into_iter()
        .map(|g| g.role_id)
        .collect();
    let holdings = member_role::Entity::find()
        .filter(member_role::Column::TenantId.eq(tenant))
        .all(conn)
        .await?;
    let permitted: BTreeSet<UserId> = holdings
        .iter()
        .filter(|h| granting.contains(&h.role_id))
        .map(|h| h.user_id)
        .collect();
    let in_role: Option<BTreeSet<UserId>> = role.map(|r| {
        holdings
            .iter()
            .filter(|h| h.role_id == r)
            .map(|h| h.user_id)
            .collect()
    });
    let active = active_among(conn, tenant, &permitted.iter().copied().collect::<Vec<_>>()).await?;
    Ok(active
        .into_iter()
        .filter(|u| in_role.as_ref().is_none_or(|s| s.contains(u)))
        .collect())
}

/// Which of `users` are active members of `tenant`, ascending.
pub(crate) async fn active_among(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    users: &[UserId],
) -> Result<BTreeSet<UserId>> {
    if users.is_empty() {
        return Ok(BTreeSet::new());
    }
    Ok(tenant_member::Entity::find()
        .filter(tenant_member::Column::TenantId.eq(tenant))
        .filter(tenant_member::Column::UserId.is_in(users.iter().copied()))
        .filter(tenant_member::Column::Status.eq(MemberStatus::Active))
        .all(conn)
        .await?
        .into_iter()
        .map(|m| m.user_id)
        .collect())
}

/// The member who may not approve `agent`'s requests under the tenant's
/// `separate_approver` setting: the member who created the agent.
pub(crate) async fn separated_member(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    agent: Option<AgentId>,
) -> Result<Option<UserId>> {
    let separate = tenant::Entity::find_by_id(tenant)
        .one(conn)
        .await?
        .is_some_and(|t| t.settings.separate_approver);
    let Some(agent) = agent.filter(|_| separate) else {
        return Ok(None);
    };
    Ok(agent::Entity::find()
        .filter(agent::Column::TenantId.eq(tenant))
        .filter(agent::Column::Id.eq(agent))
        .one(conn)
        .await?
        .and_then(|a| a.created_by))
}

/// The eligible approvers of a new request: [`eligible_members`] less the
/// member separated from the requesting agent.
pub(crate) async fn snapshot(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    role: Option<RoleId>,
    agent: Option<AgentId>,
) -> Result<Vec<UserId>> {
    let separated = separated_member(conn, tenant, agent).await?;
    Ok(eligible_members(conn, tenant, role)
        .await?
        .into_iter()
        .filter(|u| Some(*u) != separated)
        .collect())
}

/// Escalates a pending request whose escalation is due, inside the caller's
/// transaction (the request row already locked): the escalation role's
/// eligible members join the eligible set, and the escalation is spent
/// (`escalation_role_id` cleared, `escalate_at` kept as when it happened).
/// Returns the request and the role it escalated to, if it did.
pub(crate) async fn escalate_if_due(
    conn: &impl ConnectionTrait,
    request: approval_request::Model,
    now: DateTime<Utc>,
) -> Result<(approval_request::Model, Option<RoleId>)> {
    let (Some(at), Some(role)) = (request.escalate_at, request.escalation_role_id) else {
        return Ok((request, None));
    };
    if at > now {
        return Ok((request, None));
    }
    let added = snapshot(conn, request.tenant_id, Some(role), request.agent_id).await?;
    let mut eligible: BTreeSet<UserId> = request.eligible_approvers.0.iter().copied().collect();
    eligible.extend(added);
    let mut row: approval_request::ActiveModel = request.into();
    row.eligible_approvers = Set(UserIdList(eligible.into_iter().collect()));
    row.escalation_role_id = Set(None);
    row.updated_at = Set(now);
    Ok((
        crate::store::repo::update_owned(conn, row).await?,
        Some(role),
    ))
}
