//! Users (global identities) and members (a user's seat in one tenant).
//!
//! A user exists once, whatever the number of tenants they belong to; a
//! membership is the (tenant, user) pair with a seat type and a status. Roles
//! are granted to memberships ([`crate::store::RoleRepository`]).

use async_trait::async_trait;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};

use crate::entity::tenant_member::{self, MemberStatus, SeatType};
use crate::entity::user::{self, UserKind};
use crate::entity::{member_role, tenant_member::Entity as MemberEntity};
use crate::id::UserId;
use crate::page::list_page;
use crate::page::{Page, PageRequest};
use crate::store::repo::{Ctx, finish};
use crate::store::status::parse_status;
use crate::validate::validate_name;
use crate::{Error, Result};

/// Longest email address, in characters (RFC 5321's path limit, and the
/// column's width).
pub const MAX_EMAIL_LEN: usize = bursar_migration::widths::EMAIL as usize;
/// Longest external identity provider name or id, in characters.
pub const MAX_EXTERNAL_ID_LEN: usize = bursar_migration::widths::EXTERNAL_ID as usize;
/// Longest external identity provider name, in characters.
pub const MAX_AUTH_PROVIDER_LEN: usize = bursar_migration::widths::AUTH_PROVIDER as usize;

/// A user to create.
///
/// ```
/// use bursar::store::NewUser;
/// let ada = NewUser::new("Ada@Example.com ", "Ada Lovelace").external("google", "10983");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewUser {
    email: String,
    name: String,
    kind: UserKind,
    external: Option<(String, String)>,
}

impl NewUser {
    /// A person with this email (stored trimmed and lowercased) and display name.
    #[must_use]
    pub fn new(email: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            email: email.into(),
            name: name.into(),
            kind: UserKind::User,
            external: None,
        }
    }

    /// A machine identity of the host instead of a person.
    #[must_use]
    pub fn service_account(mut self) -> Self {
        self.kind = UserKind::ServiceAccount;
        self
    }

    /// The external identity provider (e.g. `google`) and the user's id there.
    #[must_use]
    pub fn external(mut self, provider: impl Into<String>, id: impl Into<String>) -> Self {
        self.external = Some((provider.into(), id.into()));
        self
    }
}

/// Trims and lowercases an email address and checks its shape: one `@`, a
/// non-empty local part, a domain with a dot, no whitespace or control
/// characters, at most [`MAX_EMAIL_LEN`] bytes.
///
/// # Errors
/// [`Error::Invalid`] (field `email`) naming the value.
pub fn normalize_email(email: &str) -> Result<String> {
    let email = email.trim().to_lowercase();
    let bad = |why: &str| Err(Error::invalid("email", format!("{email:?} {why}")));
    if email.is_empty() {
        return bad("is empty");
    }
    if email.chars().count() > MAX_EMAIL_LEN {
        return bad(&format!("is longer than {MAX_EMAIL_LEN} characters"));
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("contains whitespace or control characters");
    }
    let mut parts = email.split('@');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(local), Some(domain), None)
            if !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.') =>
        {
            Ok(email)
        }
        _ => bad("is not an email address (expected local@domain.tld)"),
    }
}

fn validate_external(field: &str, value: &str, max: usize) -> Result<String> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > max {
        return Err(Error::invalid(
            field,
            format!("{value:?} must be 1 to {max} characters"),
        ));
    }
    Ok(value.to_owned())
}

/// Creates and finds users: global identities, not confined to a tenant. Get it
/// from [`Store::users`](crate::Store::users). Add a user to a tenant with
/// [`TenantScope::members`](crate::store::TenantScope::members).
#[derive(Clone, Copy, Debug)]
pub struct Users<'a> {
    store: &'a crate::Store,
}

impl<'a> Users<'a> {
    pub(crate) fn new(store: &'a crate::Store) -> Self {
        Self { store }
    }

    async fn set_active(&self, id: UserId, active: bool) -> Result<user::Model> {
        use crate::store::repo;
        let confine = self.store.confines();
        let txn = repo::begin_unscoped(self.store).await?;
        let result = async {
            if confine {
                // The `bursar_user_memberships` policy admits this user's
                // memberships in every tenant (reading only).
                repo::set_local(&txn, repo::USER_SETTING, &id.to_string()).await?;
            }
            let row = user::Entity::find_by_id(id)
                .one(&txn)
                .await?
                .ok_or_else(|| Error::not_found(UserId::ENTITY, id))?;
            if row.is_active == active {
                return Ok(row);
            }
            let now = self.store.clock().now();
            let mut change: user::ActiveModel = row.into();
            change.is_active = Set(active);
            change.updated_at = Set(now);
            let saved = change.update(&txn).await?;
            // Tenants in one order, so that two of these never wait on each
            // other's audit chains.
            let memberships = crate::store::cross_tenant::user_memberships(&txn, id).await?;
            let action = if active {
                "user.reactivated"
            } else {
                "user.deactivated"
            };
            for m in memberships {
                if confine {
                    repo::name_tenant(&txn, m.tenant_id).await?;
                }
                crate::audit::append(
                    &txn,
                    m.tenant_id,
                    crate::audit::AuditEntry::new(action, "user").resource_id(id),
                    now,
                )
                .await?;
            }
            Ok(saved)
        }
        .await;
        finish(txn, result).await
    }
}

/// Users: global identities, not confined to a tenant; get it from
/// [`Store::users`](crate::Store::users).
#[async_trait]
pub trait UserRepository {
    /// Creates an active user.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field (`email`, `name`,
    /// `auth_provider`, `external_id`); [`Error::Conflict`] when the email is
    /// taken; [`Error::Database`].
    async fn create(&self, new: NewUser) -> Result<user::Model>;
    /// The user with this id.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Database`].
    async fn get(&self, id: UserId) -> Result<user::Model>;
    /// Shuts a user off everywhere: [`RoleRepository::can`](crate::store::RoleRepository::can)
    /// answers `false` for them in every tenant, so they hold no permission
    /// and cannot decide approvals. Their memberships and roles stay, for
    /// [`UserRepository::reactivate`]. Audited as `user.deactivated` in every tenant
    /// they belong to. Deactivating an inactive user changes nothing.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Database`].
    async fn deactivate(&self, id: UserId) -> Result<user::Model>;
    /// Undoes [`UserRepository::deactivate`]. Audited as `user.reactivated`.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Database`].
    async fn reactivate(&self, id: UserId) -> Result<user::Model>;
    /// The user with this email (compared trimmed and lowercased).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a malformed address; [`Error::NotFound`];
    /// [`Error::Database`].
    async fn by_email(&self, email: &str) -> Result<user::Model>;
}

#[async_trait]
impl UserRepository for Users<'_> {
    #[tracing::instrument(level = "debug", name = "bursar.users.create", skip_all)]
    async fn create(&self, new: NewUser) -> Result<user::Model> {
        let email = normalize_email(&new.email)?;
        let name = validate_name("name", &new.name)?;
        let (provider, external_id) = match &new.external {
            Some((p, id)) => (
                Some(validate_external(
                    "auth_provider",
                    p,
                    MAX_AUTH_PROVIDER_LEN,
                )?),
                Some(validate_external("external_id", id, MAX_EXTERNAL_ID_LEN)?),
            ),
            None => (None, None),
        };
        let now = self.store.clock().now();
        user::ActiveModel {
            id: Set(UserId::new()),
            email: Set(email.clone()),
            name: Set(name),
            password_hash: Set(None),
            auth_provider: Set(provider),
            external_id: Set(external_id),
            kind: Set(new.kind),
            is_active: Set(true),
            gdpr_consent_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(self.store.connection())
        .await
        .map_err(|e| match Error::from(e) {
            Error::Conflict { .. } => {
                Error::conflict("user", format!("email {email:?} is already taken"))
            }
            other => other,
        })
    }

    #[tracing::instrument(level = "debug", name = "bursar.users.get", skip_all)]
    async fn get(&self, id: UserId) -> Result<user::Model> {
        user::Entity::find_by_id(id)
            .one(self.store.connection())
            .await?
            .ok_or_else(|| Error::not_found(UserId::ENTITY, id))
    }

    #[tracing::instrument(level = "debug", name = "bursar.users.deactivate", skip_all)]
    async fn deactivate(&self, id: UserId) -> Result<user::Model> {
        self.set_active(id, false).await
    }

    #[tracing::instrument(level = "debug", name = "bursar.users.reactivate", skip_all)]
    async fn reactivate(&self, id: UserId) -> Result<user::Model> {
        self.set_active(id, true).await
    }

    #[tracing::instrument(level = "debug", name = "bursar.users.by_email", skip_all)]
    async fn by_email(&self, email: &str) -> Result<user::Model> {
        let email = normalize_email(email)?;
        user::Entity::find()
            .filter(user::Column::Email.eq(email.as_str()))
            .one(self.store.connection())
            .await?
            .ok_or_else(|| Error::not_found(UserId::ENTITY, email))
    }
}

/// Members of one tenant: which users belong to it, on which seat, in which
/// state.
#[async_trait]
pub trait MemberRepository {
    /// Adds an existing user to the tenant as an active member on `seat`.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown user; [`Error::Conflict`] when the
    /// user is already a member; [`Error::Database`].
    async fn add(&self, user: UserId, seat: SeatType) -> Result<tenant_member::Model>;
    /// One membership.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the user is not a member of this tenant.
    async fn get(&self, user: UserId) -> Result<tenant_member::Model>;
    /// Members, oldest first, filtered by status (`invited`, `active`,
    /// `suspended`) and creation time.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad page or status.
    async fn list(&self, page: PageRequest) -> Result<Page<tenant_member::Model>>;
    /// Changes a member's status. A suspended member keeps their roles but
    /// [`RoleRepository::can`](crate::store::RoleRepository::can) answers
    /// `false` for them.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    async fn set_status(&self, user: UserId, status: MemberStatus) -> Result<tenant_member::Model>;
    /// Changes a member's seat.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    async fn set_seat(&self, user: UserId, seat: SeatType) -> Result<tenant_member::Model>;
    /// Removes a member and their role assignments in this tenant. The user
    /// itself stays.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    async fn remove(&self, user: UserId) -> Result<()>;
}

/// The SeaORM [`MemberRepository`]. Get it from
/// [`TenantScope::members`](crate::store::TenantScope::members).
#[derive(Debug)]
pub struct Members<'a> {
    ctx: Ctx<'a>,
}

impl<'a> Members<'a> {
    pub(crate) fn new(ctx: Ctx<'a>) -> Self {
        Self { ctx }
    }
}

/// The membership of `user` in `tenant`, if any.
pub(crate) async fn find_member(
    conn: &impl sea_orm::ConnectionTrait,
    tenant: crate::id::TenantId,
    user: UserId,
) -> Result<Option<tenant_member::Model>> {
    Ok(MemberEntity::find()
        .filter(tenant_member::Column::TenantId.eq(tenant))
        .filter(tenant_member::Column::UserId.eq(user))
        .one(conn)
        .await?)
}

#[async_trait]
impl MemberRepository for Members<'_> {
    #[tracing::instrument(level = "debug", name = "bursar.members.add", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn add(&self, user: UserId, seat: SeatType) -> Result<tenant_member::Model> {
        crate::audit::audited_write!(
            &self.ctx,
            |ctx| { Members::new(ctx).add_unaudited(user, seat).await? },
            |_row| crate::audit::AuditEntry::new("member.added", "member").resource_id(user)
        )
    }

    #[tracing::instrument(level = "debug", name = "bursar.members.get", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn get(&self, user: UserId) -> Result<tenant_member::Model> {
        find_member(&self.ctx.db, self.ctx.tenant, user)
            .await?
            .ok_or_else(|| Error::not_found("member", user))
    }

    #[tracing::instrument(level = "debug", name = "bursar.members.list", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn list(&self, page: PageRequest) -> Result<Page<tenant_member::Model>> {
        let mut query =
            MemberEntity::find().filter(tenant_member::Column::TenantId.eq(self.ctx.tenant));
        if let Some(status) = page.status_filter() {
            let status: MemberStatus = parse_status(status)?;
            query = query.filter(tenant_member::Column::Status.eq(status));
        }
        list_page(
            &self.ctx.db,
            query,
            tenant_member::Column::CreatedAt,
            tenant_member::Column::UserId,
            &page,
        )
        .await
    }

    #[tracing::instrument(level = "debug", name = "bursar.members.set_status", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn set_status(&self, user: UserId, status: MemberStatus) -> Result<tenant_member::Model> {
        crate::audit::audited_write!(
            &self.ctx,
            |ctx| { Members::new(ctx).set_status_unaudited(user, status).await? },
            |row| crate::audit::AuditEntry::new("member.status_changed", "member")
                .resource_id(user)
                .message(format!(
                    "status {}",
                    sea_orm::ActiveEnum::to_value(&row.status)
                ))
        )
    }

    #[tracing::instrument(level = "debug", name = "bursar.members.set_seat", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn set_seat(&self, user: UserId, seat: SeatType) -> Result<tenant_member::Model> {
        crate::audit::audited_write!(
            &self.ctx,
            |ctx| { Members::new(ctx).set_seat_unaudited(user, seat).await? },
            |_row| crate::audit::AuditEntry::new("member.seat_changed", "member").resource_id(user)
        )
    }

    #[tracing::instrument(level = "debug", name = "bursar.members.remove", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn remove(&self, user: UserId) -> Result<()> {
        crate::audit::audited_write!(
            &self.ctx,
            |ctx| { Members::new(ctx).remove_unaudited(user).await? },
            |_done| crate::audit::AuditEntry::new("member.removed", "member").resource_id(user)
        )
    }
}

/// The changes themselves; the repository's methods audit them.
impl Members<'_> {
    async fn add_unaudited(&self, user: UserId, seat: SeatType) -> Result<tenant_member::Model> {
        user::Entity::find_by_id(user)
            .one(&self.ctx.db)
            .await?
            .ok_or_else(|| Error::not_found(UserId::ENTITY, user))?;
        let now = self.ctx.now();
        tenant_member::ActiveModel {
            tenant_id: Set(self.ctx.tenant),
            user_id: Set(user),
            seat_type: Set(seat),
            status: Set(MemberStatus::Active),
            invited_by: Set(None),
            joined_at: Set(Some(now)),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&self.ctx.db)
        .await
        .map_err(|e| match Error::from(e) {
            Error::Conflict { .. } => {
                Error::conflict("member", format!("user {user} is already a member"))
            }
            other => other,
        })
    }

    async fn set_status_unaudited(
        &self,
        user: UserId,
        status: MemberStatus,
    ) -> Result<tenant_member::Model> {
        let current = self.get(user).await?;
        let now = self.ctx.now();
        let joined = current.joined_at;
        let mut row: tenant_member::ActiveModel = current.into();
        if status == MemberStatus::Active && joined.is_none() {
            row.joined_at = Set(Some(now));
        }
        row.status = Set(status);
        row.updated_at = Set(now);
        Ok(crate::store::repo::update_owned(&self.ctx.db, row).await?)
    }

    async fn set_seat_unaudited(
        &self,
        user: UserId,
        seat: SeatType,
    ) -> Result<tenant_member::Model> {
        let mut row: tenant_member::ActiveModel = self.get(user).await?.into();
        row.seat_type = Set(seat);
        row.updated_at = Set(self.ctx.now());
        Ok(crate::store::repo::update_owned(&self.ctx.db, row).await?)
    }

    async fn remove_unaudited(&self, user: UserId) -> Result<()> {
        let txn = self.ctx.begin_write().await?;
        let result = async {
            find_member(&txn, self.ctx.tenant, user)
                .await?
                .ok_or_else(|| Error::not_found("member", user))?;
            member_role::Entity::delete_many()
                .filter(member_role::Column::TenantId.eq(self.ctx.tenant))
                .filter(member_role::Column::UserId.eq(user))
                .exec(&txn)
                .await?;
            MemberEntity::delete_many()
                .filter(tenant_member::Column::TenantId.eq(self.ctx.tenant))
                .filter(tenant_member::Column::UserId.eq(user))
                .exec(&txn)
                .await?;
            Ok(())
        }
        .await;
        finish(txn, result).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_lowercased_and_checked() {
        assert_eq!(
            normalize_email("  Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "a@b@c.com",
            "a b@c.com",
            "a@com",
            "a@.com",
        ] {
            let err = normalize_email(bad).unwrap_err();
            assert!(
                matches!(&err, Error::Invalid { field, .. } if field == "email"),
                "{bad}: {err}"
            );
        }
        assert!(normalize_email(&format!("{}@example.com", "a".repeat(250))).is_err());
    }
}
