//! Roles, permissions and who holds them: role-based access control for the
//! people who administer a tenant.
//!
//! Permissions are global codes, `resource:action` (see [`permissions`]); a
//! role is a tenant's named set of them; members hold roles. Every tenant gets
//! the built-in roles [`ADMIN`](builtin::ADMIN), [`FINANCE`](builtin::FINANCE),
//! [`DEVELOPER`](builtin::DEVELOPER) and [`READONLY`](builtin::READONLY) when it
//! is created.

use std::collections::BTreeMap;

use async_trait::async_trait;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use crate::entity::tenant_member::MemberStatus;
use crate::entity::{member_role, permission, role, role_permission};
use crate::id::{PermissionId, RoleId, TenantId, UserId};
use crate::page::list_page;
use crate::page::{Page, PageRequest};
use crate::store::members::find_member;
use crate::store::repo::{Ctx, finish};
use crate::validate::validate_description;
use crate::{Error, Result};

/// The permission codes bursar knows, `resource:action`.
///
/// Every `resource` has a `:read` and a `:write` code. The codes are seeded
/// into the global `permissions` table on first use.
pub mod permissions {
    /// See agents.
    pub const AGENTS_READ: &str = "agents:read";
    /// Create, pause, suspend and move agents.
    pub const AGENTS_WRITE: &str = "agents:write";
    /// See agent API keys (prefixes, never secrets).
    pub const KEYS_READ: &str = "keys:read";
    /// Issue and revoke agent API keys.
    pub const KEYS_WRITE: &str = "keys:write";
    /// See teams and projects.
    pub const TEAMS_READ: &str = "teams:read";
    /// Create and rename teams and projects.
    pub const TEAMS_WRITE: &str = "teams:write";
    /// See members and their roles.
    pub const MEMBERS_READ: &str = "members:read";
    /// Add, suspend and remove members; assign roles.
    pub const MEMBERS_WRITE: &str = "members:write";
    /// See roles.
    pub const ROLES_READ: &str = "roles:read";
    /// Create roles.
    pub const ROLES_WRITE: &str = "roles:write";
    /// See policies.
    pub const POLICIES_READ: &str = "policies:read";
    /// Create, change and disable policies.
    pub const POLICIES_WRITE: &str = "policies:write";
    /// See budgets and their balances.
    pub const BUDGETS_READ: &str = "budgets:read";
    /// Create and change budgets.
    pub const BUDGETS_WRITE: &str = "budgets:write";
    /// See reservations.
    pub const RESERVATIONS_READ: &str = "reservations:read";
    /// Capture, release and refund reservations.
    pub const RESERVATIONS_WRITE: &str = "reservations:write";
    /// See card transactions.
    pub const TRANSACTIONS_READ: &str = "transactions:read";
    /// Record and correct card transactions.
    pub const TRANSACTIONS_WRITE: &str = "transactions:write";
    /// See virtual cards.
    pub const CARDS_READ: &str = "cards:read";
    /// Issue, freeze and close virtual cards.
    pub const CARDS_WRITE: &str = "cards:write";
    /// See approval requests.
    pub const APPROVALS_READ: &str = "approvals:read";
    /// Approve or deny requests.
    pub const APPROVALS_WRITE: &str = "approvals:write";
    /// See known merchants and blocked attempts.
    pub const MERCHANTS_READ: &str = "merchants:read";
    /// Change known merchants.
    pub const MERCHANTS_WRITE: &str = "merchants:write";
    /// Read and verify the audit log.
    pub const AUDIT_READ: &str = "audit:read";
    /// Append the host's own audit entries.
    pub const AUDIT_WRITE: &str = "audit:write";
    /// See provider connections (never their credentials).
    pub const CONNECTIONS_READ: &str = "connections:read";
    /// Create, rotate and remove provider connections.
    pub const CONNECTIONS_WRITE: &str = "connections:write";
    /// See agent runs and usage.
    pub const RUNS_READ: &str = "runs:read";
    /// Start, cap and kill agent runs.
    pub const RUNS_WRITE: &str = "runs:write";

    /// Every known code, reads and writes interleaved by resource.
    pub const ALL: &[&str] = &[
        AGENTS_READ,
        AGENTS_WRITE,
        KEYS_READ,
        KEYS_WRITE,
        TEAMS_READ,
        TEAMS_WRITE,
        MEMBERS_READ,
        MEMBERS_WRITE,
        ROLES_READ,
        ROLES_WRITE,
        POLICIES_READ,
        POLICIES_WRITE,
        BUDGETS_READ,
        BUDGETS_WRITE,
        RESERVATIONS_READ,
        RESERVATIONS_WRITE,
        TRANSACTIONS_READ,
        TRANSACTIONS_WRITE,
        CARDS_READ,
        CARDS_WRITE,
        APPROVALS_READ,
        APPROVALS_WRITE,
        MERCHANTS_READ,
        MERCHANTS_WRITE,
        AUDIT_READ,
        AUDIT_WRITE,
        CONNECTIONS_READ,
        CONNECTIONS_WRITE,
        RUNS_READ,
        RUNS_WRITE,
    ];

    /// Whether `code` is one of [`ALL`].
    #[must_use]
    pub fn is_known(code: &str) -> bool {
        ALL.contains(&code)
    }
}

/// The built-in roles every tenant has.
pub mod builtin {
    use super::permissions as p;

    /// Everything.
    pub const ADMIN: &str = "admin";
    /// Money: budgets, reservations, transactions and approvals (read and
    /// write), and reading policies.
    pub const FINANCE: &str = "finance";
    /// Agents, their keys and policies (read and write), and reading budgets.
    pub const DEVELOPER: &str = "developer";
    /// Every `:read` code.
    pub const READONLY: &str = "readonly";

    /// Every built-in role name.
    pub const ALL: [&str; 4] = [ADMIN, FINANCE, DEVELOPER, READONLY];

    /// The codes a built-in role grants (`None` for another name).
    #[must_use]
    pub fn permissions_of(role: &str) -> Option<Vec<&'static str>> {
        let codes = match role {
            ADMIN => p::ALL.to_vec(),
            FINANCE => vec![
                p::BUDGETS_READ,
                p::BUDGETS_WRITE,
                p::RESERVATIONS_READ,
                p::RESERVATIONS_WRITE,
                p::TRANSACTIONS_READ,
                p::TRANSACTIONS_WRITE,
                p::APPROVALS_READ,
                p::APPROVALS_WRITE,
                p::POLICIES_READ,
            ],
            DEVELOPER => vec![
                p::AGENTS_READ,
                p::AGENTS_WRITE,
                p::KEYS_READ,
                p::KEYS_WRITE,
                p::POLICIES_READ,
                p::POLICIES_WRITE,
                p::BUDGETS_READ,
            ],
            READONLY => p::ALL
                .iter()
                .copied()
                .filter(|c| c.ends_with(":read"))
                .collect(),
            _ => return None,
        };
        Some(codes)
    }

    pub(super) fn description(role: &str) -> &'static str {
        match role {
            ADMIN => "Everything",
            FINANCE => "Budgets, reservations, transactions and approvals; reads policies",
            DEVELOPER => "Agents, keys and policies; reads budgets",
            _ => "Reads everything, changes nothing",
        }
    }
}

/// Longest role name, in bytes.
pub const MAX_ROLE_NAME_LEN: usize = 64;

fn validate_role_name(name: &str) -> Result<String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_ROLE_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(name.to_owned())
    } else {
        Err(Error::invalid(
            "name",
            format!(
                "{name:?} is not a role name: use 1 to {MAX_ROLE_NAME_LEN} lowercase letters, digits, '-' and '_'"
            ),
        ))
    }
}

fn validate_code(code: &str) -> Result<&str> {
    if permissions::is_known(code) {
        Ok(code)
    } else {
        Err(Error::invalid(
            "permission",
            format!("{code:?} is not a known permission code (e.g. \"policies:write\")"),
        ))
    }
}

/// A custom role to create.
///
/// ```
/// use bursar::store::{NewRole, permissions};
/// let auditor = NewRole::new("auditor")
///     .permission(permissions::AUDIT_READ)
///     .permission(permissions::BUDGETS_READ);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRole {
    name: String,
    description: Option<String>,
    permissions: Vec<String>,
}

impl NewRole {
    /// A role called `name` (lowercase letters, digits, `-`, `_`; unique in the tenant).
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: None,
            permissions: Vec::new(),
        }
    }

    /// What the role is for.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Grants a permission code (one of [`permissions::ALL`]).
    #[must_use]
    pub fn permission(mut self, code: impl Into<String>) -> Self {
        self.permissions.push(code.into());
        self
    }
}

/// Roles of one tenant, their permissions, and which members hold them.
#[async_trait]
pub trait RoleRepository {
    /// Creates the built-in roles (and the permission codes) if they are
    /// missing, and returns them. Safe to call any number of times, also
    /// concurrently; [`TenantRepository::create`](crate::store::TenantRepository::create) calls it.
    ///
    /// # Errors
    /// [`Error::Database`].
    async fn ensure_builtin(&self) -> Result<Vec<role::Model>>;
    /// Creates a custom role.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `name`, `description` or `permission`;
    /// [`Error::Conflict`] when the name is taken.
    async fn create(&self, new: NewRole) -> Result<role::Model>;
    /// One role.
    ///
    /// # Errors
    /// [`Error::NotFound`] when it is not this tenant's.
    async fn get(&self, id: RoleId) -> Result<role::Model>;
    /// The role with this name.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    async fn by_name(&self, name: &str) -> Result<role::Model>;
    /// Roles, oldest first.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad page.
    async fn list(&self, page: PageRequest) -> Result<Page<role::Model>>;
    /// The permission codes a role grants, sorted.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    async fn permissions_of(&self, id: RoleId) -> Result<Vec<String>>;
    /// Gives a member a role. Assigning a role the member holds changes nothing.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the user is not a member of this tenant or the
    /// role is not this tenant's.
    async fn assign(&self, user: UserId, role: RoleId) -> Result<()>;
    /// Takes a role from a member. Revoking a role the member does not hold
    /// changes nothing.
    ///
    /// # Errors
    /// [`Error::NotFound`] as for [`RoleRepository::assign`].
    async fn revoke(&self, user: UserId, role: RoleId) -> Result<()>;
    /// The roles a member holds, by name.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the user is not a member.
    async fn roles_of(&self, user: UserId) -> Result<Vec<role::Model>>;
    /// Whether `user` may do what `permission` names (`"policies:write"`):
    /// `true` only for an active member of this tenant holding a role that
    /// grants it; `false` for anyone else, including a non-member and an
    /// invited or suspended member.
    ///
    /// # Errors
    /// [`Error::Invalid`] (field `permission`) for a code that is not one of
    /// [`permissions::ALL`]; [`Error::Database`].
    async fn can(&self, user: UserId, permission: &str) -> Result<bool>;
}

/// The SeaORM [`RoleRepository`]. Get it from
/// [`TenantScope::roles`](crate::store::TenantScope::roles).
#[derive(Debug)]
pub struct Roles<'a> {
    ctx: Ctx<'a>,
}

impl<'a> Roles<'a> {
    pub(crate) fn new(ctx: Ctx<'a>) -> Self {
        Self { ctx }
    }

    async fn check_member(&self, user: UserId) -> Result<()> {
        find_member(&self.ctx.db, self.ctx.tenant, user)
            .await?
            .map(|_| ())
            .ok_or_else(|| Error::not_found("member", user))
    }
}

/// Inserts the known permission codes that are missing, and returns every
/// known code's id.
pub(crate) async fn seed_permissions(
    conn: &impl ConnectionTrait,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<BTreeMap<String, PermissionId>> {
    let existing = permission_ids(conn).await?;
    if existing.len() == permissions::ALL.len() {
        return Ok(existing);
    }
    for code in permissions::ALL
        .iter()
        .filter(|c| !existing.contains_key(**c))
    {
        permission::Entity::insert(permission::ActiveModel {
            id: Set(PermissionId::new()),
            code: Set((*code).to_owned()),
            description: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .on_conflict_do_nothing_on([permission::Column::Code])
        .exec_without_returning(conn)
        .await?;
    }
    permission_ids(conn).await
}

async fn permission_ids(conn: &impl ConnectionTrait) -> Result<BTreeMap<String, PermissionId>> {
    Ok(permission::Entity::find()
        .filter(permission::Column::Code.is_in(permissions::ALL.iter().copied()))
        .all(conn)
        .await?
        .into_iter()
        .map(|p| (p.code, p.id))
        .collect())
}

async fn grant_all(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    role: RoleId,
    ids: &[PermissionId],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    for id in ids {
        role_permission::Entity::insert(role_permission::ActiveModel {
            tenant_id: Set(tenant),
            role_id: Set(role),
            permission_id: Set(*id),
            created_at: Set(now),
        })
        .on_conflict_do_nothing_on([
            role_permission::Column::TenantId,
            role_permission::Column::RoleId,
            role_permission::Column::PermissionId,
        ])
        .exec_without_returning(conn)
        .await?;
    }
    Ok(())
}

fn ids_of(all: &BTreeMap<String, PermissionId>, codes: &[&str]) -> Result<Vec<PermissionId>> {
    codes
        .iter()
        .map(|c| {
            all.get(*c)
                .copied()
                .ok_or_else(|| Error::not_found(PermissionId::ENTITY, c))
        })
        .collect()
}

async fn find_role_by_name(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    name: &str,
) -> Result<Option<role::Model>> {
    Ok(role::Entity::find()
        .filter(role::Column::TenantId.eq(tenant))
        .filter(role::Column::Name.eq(name))
        .one(conn)
        .await?)
}

/// Creates `tenant`'s missing built-in roles and their grants inside the
/// caller's transaction.
pub(crate) async fn ensure_builtin_in(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<role::Model>> {
    let ids = seed_permissions(conn, now).await?;
    let mut roles = Vec::with_capacity(builtin::ALL.len());
    for name in builtin::ALL {
        role::Entity::insert(role::ActiveModel {
            id: Set(RoleId::new()),
            tenant_id: Set(tenant),
            name: Set(name.to_owned()),
            description: Set(Some(builtin::description(name).to_owned())),
            is_builtin: Set(true),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .on_conflict_do_nothing_on([role::Column::TenantId, role::Column::Name])
        .exec_without_returning(conn)
        .await?;
        let row = find_role_by_name(conn, tenant, name)
            .await?
            .ok_or_else(|| Error::not_found(RoleId::ENTITY, name))?;
        let codes = builtin::permissions_of(name).unwrap_or_default();
        grant_all(conn, tenant, row.id, &ids_of(&ids, &codes)?, now).await?;
        roles.push(row);
    }
    Ok(roles)
}

#[async_trait]
impl RoleRepository for Roles<'_> {
    #[tracing::instrument(level = "debug", name = "bursar.roles.ensure_builtin", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn ensure_builtin(&self) -> Result<Vec<role::Model>> {
        let txn = self.ctx.begin_write().await?;
        let result = ensure_builtin_in(&txn, self.ctx.tenant, self.ctx.now()).await;
        finish(txn, result).await
    }

    #[tracing::instrument(level = "debug", name = "bursar.roles.create", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn create(&self, new: NewRole) -> Result<role::Model> {
        crate::audit::audited_write!(
            &self.ctx,
            |ctx| { Roles::new(ctx).create_unaudited(new).await? },
            |row| crate::audit::AuditEntry::new("role.created", "role").resource_id(row.id)
        )
    }

    #[tracing::instrument(level = "debug", name = "bursar.roles.get", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn get(&self, id: RoleId) -> Result<role::Model> {
        role::Entity::find()
            .filter(role::Column::TenantId.eq(self.ctx.tenant))
            .filter(role::Column::Id.eq(id))
            .one(&self.ctx.db)
            .await?
            .ok_or_else(|| Error::not_found(RoleId::ENTITY, id))
    }

    #[tracing::instrument(level = "debug", name = "bursar.roles.by_name", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn by_name(&self, name: &str) -> Result<role::Model> {
        find_role_by_name(&self.ctx.db, self.ctx.tenant, name)
            .await?
            .ok_or_else(|| Error::not_found(RoleId::ENTITY, name))
    }

    #[tracing::instrument(level = "debug", name = "bursar.roles.list", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn list(&self, page: PageRequest) -> Result<Page<role::Model>> {
        let query = role::Entity::find().filter(role::Column::TenantId.eq(self.ctx.tenant));
        list_page(
            &self.ctx.db,
            query,
            role::Column::CreatedAt,
            role::Column::Id,
            &page,
        )
        .await
    }

    #[tracing::instrument(level = "debug", name = "bursar.roles.permissions_of", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn permissions_of(&self, id: RoleId) -> Result<Vec<String>> {
        self.get(id).await?;
        let granted: Vec<PermissionId> = role_permission::Entity::find()
            .filter(role_permission::Column::TenantId.eq(self.ctx.tenant))
            .filter(role_permission::Column::RoleId.eq(id))
            .all(&self.ctx.db)
            .await?
            .into_iter()
            .map(|g| g.permission_id)
            .collect();
        let mut codes: Vec<String> = permission::Entity::find()
            .filter(permission::Column::Id.is_in(granted))
            .all(&self.ctx.db)
            .await?
            .into_iter()
            .map(|p| p.code)
            .collect();
        codes.sort();
        Ok(codes)
    }

    #[tracing::instrument(level = "debug", name = "bursar.roles.assign", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn assign(&self, user: UserId, role: RoleId) -> Result<()> {
        crate::audit::audited_write!(
            &self.ctx,
            |ctx| { Roles::new(ctx).assign_unaudited(user, role).await? },
            |_done| crate::audit::AuditEntry::new("role.assigned", "member")
                .resource_id(user)
                .message(format!("role {role}"))
        )
    }

    #[tracing::instrument(level = "debug", name = "bursar.roles.revoke", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn revoke(&self, user: UserId, role: RoleId) -> Result<()> {
        crate::audit::audited_write!(
            &self.ctx,
            |ctx| { Roles::new(ctx).revoke_unaudited(user, role).await? },
            |_done| crate::audit::AuditEntry::new("role.revoked", "member")
                .resource_id(user)
                .message(format!("role {role}"))
        )
    }

    #[tracing::instrument(level = "debug", name = "bursar.roles.roles_of", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn roles_of(&self, user: UserId) -> Result<Vec<role::Model>> {
        self.check_member(user).await?;
        let ids = held_role_ids(&self.ctx.db, self.ctx.tenant, user).await?;
        let mut roles = role::Entity::find()
            .filter(role::Column::TenantId.eq(self.ctx.tenant))
            .filter(role::Column::Id.is_in(ids))
            .all(&self.ctx.db)
            .await?;
        roles.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(roles)
    }

    #[tracing::instrument(level = "debug", name = "bursar.roles.can", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn can(&self, user: UserId, permission: &str) -> Result<bool> {
        let code = validate_code(permission)?;
        let conn = &self.ctx.db;
        match find_member(conn, self.ctx.tenant, user).await? {
            Some(m) if m.status == MemberStatus::Active => {}
            _ => return Ok(false),
        }
        // A deactivated user holds no permission anywhere.
        let user_active = crate::entity::user::Entity::find_by_id(user)
            .one(conn)
            .await?
            .is_some_and(|u| u.is_active);
        if !user_active {
            return Ok(false);
        }
        let roles = held_role_ids(conn, self.ctx.tenant, user).await?;
        if roles.is_empty() {
            return Ok(false);
        }
        let Some(perm) = permission::Entity::find()
            .filter(permission::Column::Code.eq(code))
            .one(conn)
            .await?
        else {
            return Ok(false);
        };
        let grant = role_permission::Entity::find()
            .filter(role_permission::Column::TenantId.eq(self.ctx.tenant))
            .filter(role_permission::Column::RoleId.is_in(roles))
            .filter(role_permission::Column::PermissionId.eq(perm.id))
            .one(conn)
            .await?;
        Ok(grant.is_some())
    }
}

async fn held_role_ids(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    user: UserId,
) -> Result<Vec<RoleId>> {
    Ok(member_role::Entity::find()
        .filter(member_role::Column::TenantId.eq(tenant))
        .filter(member_role::Column::UserId.eq(user))
        .all(conn)
        .await?
        .into_iter()
        .map(|r| r.role_id)
        .collect())
}

/// The changes themselves; the repository's methods audit them.
impl Roles<'_> {
    async fn create_unaudited(&self, new: NewRole) -> Result<role::Model> {
        let name = validate_role_name(&new.name)?;
        let description = validate_description(new.description.as_deref())?;
        let mut codes = Vec::with_capacity(new.permissions.len());
        for code in &new.permissions {
            codes.push(validate_code(code)?);
        }
        let now = self.ctx.now();
        let txn = self.ctx.begin_write().await?;
        let result = async {
            let ids = seed_permissions(&txn, now).await?;
            let row = role::ActiveModel {
                id: Set(RoleId::new()),
                tenant_id: Set(self.ctx.tenant),
                name: Set(name.clone()),
                description: Set(description),
                is_builtin: Set(false),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(&txn)
            .await
            .map_err(|e| match Error::from(e) {
                Error::Conflict { .. } => {
                    Error::conflict("role", format!("name {name:?} is already taken"))
                }
                other => other,
            })?;
            grant_all(&txn, self.ctx.tenant, row.id, &ids_of(&ids, &codes)?, now).await?;
            Ok(row)
        }
        .await;
        finish(txn, result).await
    }

    async fn assign_unaudited(&self, user: UserId, role: RoleId) -> Result<()> {
        self.check_member(user).await?;
        self.get(role).await?;
        member_role::Entity::insert(member_role::ActiveModel {
            tenant_id: Set(self.ctx.tenant),
            user_id: Set(user),
            role_id: Set(role),
            created_at: Set(self.ctx.now()),
        })
        .on_conflict_do_nothing_on([
            member_role::Column::TenantId,
            member_role::Column::UserId,
            member_role::Column::RoleId,
        ])
        .exec_without_returning(&self.ctx.db)
        .await?;
        Ok(())
    }

    async fn revoke_unaudited(&self, user: UserId, role: RoleId) -> Result<()> {
        self.check_member(user).await?;
        self.get(role).await?;
        member_role::Entity::delete_many()
            .filter(member_role::Column::TenantId.eq(self.ctx.tenant))
            .filter(member_role::Column::UserId.eq(user))
            .filter(member_role::Column::RoleId.eq(role))
            .exec(&self.ctx.db)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_roles_grant_what_their_docs_say() {
        let admin = builtin::permissions_of(builtin::ADMIN).unwrap();
        assert_eq!(admin.len(), permissions::ALL.len());
        let readonly = builtin::permissions_of(builtin::READONLY).unwrap();
        assert!(readonly.iter().all(|c| c.ends_with(":read")));
        assert_eq!(readonly.len() * 2, permissions::ALL.len());
        let finance = builtin::permissions_of(builtin::FINANCE).unwrap();
        assert!(finance.contains(&permissions::POLICIES_READ));
        assert!(!finance.contains(&permissions::POLICIES_WRITE));
        let developer = builtin::permissions_of(builtin::DEVELOPER).unwrap();
        assert!(developer.contains(&permissions::POLICIES_WRITE));
        assert!(!developer.contains(&permissions::BUDGETS_WRITE));
        assert!(builtin::permissions_of("owner").is_none());
    }

    #[test]
    fn every_code_is_resource_colon_action_and_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for code in permissions::ALL {
            let (resource, action) = code.split_once(':').unwrap();
            assert!(!resource.is_empty() && (action == "read" || action == "write"));
            assert!(code.len() <= 100);
            assert!(seen.insert(*code), "{code} twice");
        }
    }
}
