//! Tenants: the one table that is not scoped by a tenant.

use async_trait::async_trait;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QuerySelect, Set};

use crate::entity::tenant;
use crate::id::TenantId;
use crate::money::Currency;
use crate::validate::{validate_name, validate_slug};
use crate::{Error, Result};

/// How long an approved purchase's reservation is held when the tenant's
/// settings do not say (`settings.reservation_ttl_secs`): 15 minutes.
pub const DEFAULT_RESERVATION_TTL: chrono::Duration = chrono::Duration::minutes(15);
/// How long an approval request (and its hold on the budgets) lives when the
/// tenant's settings do not say (`settings.approval_ttl_secs`): 24 hours.
pub const DEFAULT_APPROVAL_TTL: chrono::Duration = chrono::Duration::hours(24);

/// What to create a tenant with.
///
/// ```
/// use bursar::store::NewTenant;
/// let acme = NewTenant::new("Acme", "acme").timezone("Europe/Berlin").currency("EUR");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTenant {
    name: String,
    slug: String,
    timezone: String,
    currency: String,
    plan: String,
    default_allow: bool,
    settings: tenant::TenantSettings,
}

impl NewTenant {
    /// A tenant called `name`, addressed by `slug` (lowercase letters, digits
    /// and `-`, unique). Defaults: time zone UTC, currency USD, plan `free`,
    /// default effect deny.
    #[must_use]
    pub fn new(name: impl Into<String>, slug: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            slug: slug.into(),
            timezone: "UTC".into(),
            currency: "USD".into(),
            plan: "free".into(),
            default_allow: false,
            settings: tenant::TenantSettings::default(),
        }
    }

    /// The IANA time zone budget windows are computed in (e.g. `America/New_York`).
    #[must_use]
    pub fn timezone(mut self, tz: impl Into<String>) -> Self {
        self.timezone = tz.into();
        self
    }

    /// The default ISO 4217 currency.
    #[must_use]
    pub fn currency(mut self, code: impl Into<String>) -> Self {
        self.currency = code.into();
        self
    }

    /// The plan name, for the host's own use.
    #[must_use]
    pub fn plan(mut self, plan: impl Into<String>) -> Self {
        self.plan = plan.into();
        self
    }

    /// Approve requests that no policy matched (default: reject them with
    /// `NO_MATCHING_POLICY`).
    #[must_use]
    pub fn default_allow(mut self, allow: bool) -> Self {
        self.default_allow = allow;
        self
    }

    /// The tenant's settings (reservation and approval TTLs, separation of
    /// duties, whether every action must name a run, BYOK budget exemption,
    /// …).
    #[must_use]
    pub fn settings(mut self, settings: tenant::TenantSettings) -> Self {
        self.settings = settings;
        self
    }
}

/// Creates and finds tenants. Get it from [`Store::tenants`](crate::Store::tenants).
#[derive(Clone, Copy, Debug)]
pub struct Tenants<'a> {
    store: &'a crate::Store,
}

impl<'a> Tenants<'a> {
    pub(crate) fn new(store: &'a crate::Store) -> Self {
        Self { store }
    }
}

/// Tenants: created, found, changed and shut off. Not confined to a tenant;
/// get it from [`Store::tenants`](crate::Store::tenants).
#[async_trait]
pub trait TenantRepository {
    /// Creates a tenant, with its built-in roles (admin, finance, developer,
    /// readonly; see [`RoleRepository::ensure_builtin`](crate::store::RoleRepository::ensure_builtin)),
    /// in one transaction.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field for a bad name, slug, time zone or
    /// currency; [`Error::Conflict`] when the slug is taken; [`Error::Database`].
    async fn create(&self, new: NewTenant) -> Result<tenant::Model>;
    /// The tenant with this id.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Database`].
    async fn get(&self, id: TenantId) -> Result<tenant::Model>;
    /// The tenant with this slug.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Database`].
    async fn by_slug(&self, slug: &str) -> Result<tenant::Model>;
    /// Shuts a tenant off: its agents' keys stop authenticating
    /// ([`Error::Unauthenticated`]) and every [`authorize`](crate::TenantScope::authorize)
    /// is rejected with `TENANT_INACTIVE`, while its data stays readable.
    /// Audited as `tenant.deactivated`. Deactivating an inactive tenant
    /// changes nothing and writes no entry.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Database`].
    async fn deactivate(&self, id: TenantId) -> Result<tenant::Model>;
    /// Undoes [`TenantRepository::deactivate`]. Audited as `tenant.reactivated`.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Database`].
    async fn reactivate(&self, id: TenantId) -> Result<tenant::Model>;
    /// Changes a tenant's settings (time zone, reservation and approval
    /// TTLs, new-vendor flag, notification address, default effect), all
    /// validated before anything is written. Audited as
    /// `tenant.settings_updated` with the settings before and after.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field (`timezone`, `reservation_ttl_secs`,
    /// `approval_ttl_secs`, `notification_email`); [`Error::NotFound`];
    /// [`Error::Database`].
    async fn update_settings(&self, id: TenantId, update: TenantUpdate) -> Result<tenant::Model>;
}

#[async_trait]
impl TenantRepository for Tenants<'_> {
    #[tracing::instrument(level = "debug", name = "bursar.tenants.create", skip_all)]
    async fn create(&self, new: NewTenant) -> Result<tenant::Model> {
        let name = validate_name("name", &new.name)?;
        let slug = validate_slug("slug", &new.slug)?;
        let tz = crate::budget::parse_timezone(&new.timezone)?;
        let currency = Currency::from_code(&new.currency)?;
        let plan = validate_name("plan", &new.plan)?;
        let now = self.store.clock().now();
        let id = TenantId::new();
        let row = tenant::ActiveModel {
            id: Set(id),
            name: Set(name),
            slug: Set(slug.clone()),
            plan: Set(plan),
            plan_expires_at: Set(None),
            is_active: Set(true),
            timezone: Set(tz.name().to_owned()),
            default_currency: Set(currency),
            default_effect: Set(if new.default_allow {
                crate::policy::DefaultEffect::Allow
            } else {
                crate::policy::DefaultEffect::Deny
            }),
            settings: Set(new.settings.clone()),
            created_at: Set(now),
            updated_at: Set(now),
        };
        // The built-in roles are the new tenant's rows: the transaction names it.
        let txn = crate::store::repo::begin_for(self.store, id).await?;
        let result = async {
            let tenant = row.insert(&txn).await.map_err(|e| match Error::from(e) {
                Error::Conflict { .. } => {
                    Error::conflict("tenant", format!("slug {slug:?} is already taken"))
                }
                other => other,
            })?;
            crate::store::roles::ensure_builtin_in(&txn, tenant.id, now).await?;
            Ok(tenant)
        }
        .await;
        crate::store::repo::finish(txn, result).await
    }

    #[tracing::instrument(level = "debug", name = "bursar.tenants.get", skip_all, fields(tenant = %id))]
    async fn get(&self, id: TenantId) -> Result<tenant::Model> {
        tenant::Entity::find_by_id(id)
            .one(self.store.connection())
            .await?
            .ok_or_else(|| Error::not_found(TenantId::ENTITY, id))
    }

    #[tracing::instrument(level = "debug", name = "bursar.tenants.by_slug", skip_all)]
    async fn by_slug(&self, slug: &str) -> Result<tenant::Model> {
        tenant::Entity::find()
            .filter(tenant::Column::Slug.eq(slug))
            .one(self.store.connection())
            .await?
            .ok_or_else(|| Error::not_found(TenantId::ENTITY, slug))
    }

    #[tracing::instrument(level = "debug", name = "bursar.tenants.deactivate", skip_all, fields(tenant = %id))]
    async fn deactivate(&self, id: TenantId) -> Result<tenant::Model> {
        self.set_active(id, false).await
    }

    #[tracing::instrument(level = "debug", name = "bursar.tenants.reactivate", skip_all, fields(tenant = %id))]
    async fn reactivate(&self, id: TenantId) -> Result<tenant::Model> {
        self.set_active(id, true).await
    }

    #[tracing::instrument(level = "debug", name = "bursar.tenants.update_settings", skip_all, fields(tenant = %id))]
    async fn update_settings(&self, id: TenantId, update: TenantUpdate) -> Result<tenant::Model> {
        let timezone = match &update.timezone {
            Some(tz) => Some(crate::budget::parse_timezone(tz)?.name().to_owned()),
            None => None,
        };
        let reservation_ttl = match update.reservation_ttl_secs {
            Some(v) => Some(check_ttl(
                "reservation_ttl_secs",
                v,
                MAX_RESERVATION_TTL_SECS,
            )?),
            None => None,
        };
        let approval_ttl = match update.approval_ttl_secs {
            Some(v) => Some(check_ttl("approval_ttl_secs", v, MAX_APPROVAL_TTL_SECS)?),
            None => None,
        };
        let email = match update.notification_email.clone() {
            Some(v) => Some(check_email(v)?),
            None => None,
        };
        self.change(id, "tenant.settings_updated", move |row| {
            if let Some(tz) = &timezone {
                row.timezone.clone_from(tz);
            }
            if let Some(v) = reservation_ttl {
                row.settings.reservation_ttl_secs = v;
            }
            if let Some(v) = approval_ttl {
                row.settings.approval_ttl_secs = v;
            }
            if let Some(v) = update.flag_all_new_vendors {
                row.settings.flag_all_new_vendors = v;
            }
            if let Some(v) = update.require_run {
                row.settings.require_run = v;
            }
            if let Some(v) = update.byok_exempt_from_budgets {
                row.settings.byok_exempt_from_budgets = v;
            }
            if let Some(v) = &email {
                row.settings.notification_email.clone_from(v);
            }
            if let Some(allow) = update.default_allow {
                row.default_effect = if allow {
                    crate::policy::DefaultEffect::Allow
                } else {
                    crate::policy::DefaultEffect::Deny
                };
            }
            Ok(())
        })
        .await
    }
}

/// Longest reservation hold a tenant may configure: 7 days, in seconds.
pub const MAX_RESERVATION_TTL_SECS: u32 = 7 * 24 * 3600;
/// Longest time an approval request may wait, a tenant may configure: 30 days, in seconds.
pub const MAX_APPROVAL_TTL_SECS: u32 = 30 * 24 * 3600;
/// Longest notification address, in characters.
pub const MAX_NOTIFICATION_EMAIL_LEN: usize = 255;

/// Changes to a tenant's settings; fields left unset keep their value.
///
/// ```
/// use bursar::store::TenantUpdate;
/// let update = TenantUpdate::new()
///     .timezone("Europe/Berlin")
///     .reservation_ttl_secs(Some(600))
///     .approval_ttl_secs(None);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TenantUpdate {
    timezone: Option<String>,
    reservation_ttl_secs: Option<Option<u32>>,
    approval_ttl_secs: Option<Option<u32>>,
    flag_all_new_vendors: Option<bool>,
    notification_email: Option<Option<String>>,
    default_allow: Option<bool>,
    require_run: Option<bool>,
    byok_exempt_from_budgets: Option<bool>,
}

impl TenantUpdate {
    /// No change yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The IANA time zone budget windows are computed in.
    #[must_use]
    pub fn timezone(mut self, tz: impl Into<String>) -> Self {
        self.timezone = Some(tz.into());
        self
    }

    /// Whether every agent action must name an active run (`RUN_REQUIRED`
    /// otherwise).
    #[must_use]
    pub fn require_run(mut self, required: bool) -> Self {
        self.require_run = Some(required);
        self
    }

    /// Whether LLM calls made with the tenant's own provider key are exempt
    /// from money budgets (still metered for tokens and rounds).
    #[must_use]
    pub fn byok_exempt_from_budgets(mut self, exempt: bool) -> Self {
        self.byok_exempt_from_budgets = Some(exempt);
        self
    }

    /// How long an approved reservation is held, in seconds (1 to
    /// [`MAX_RESERVATION_TTL_SECS`]); `None` restores bursar's default.
    #[must_use]
    pub fn reservation_ttl_secs(mut self, secs: Option<u32>) -> Self {
        self.reservation_ttl_secs = Some(secs);
        self
    }

    /// How long an approval request waits for votes, in seconds (1 to
    /// [`MAX_APPROVAL_TTL_SECS`]); `None` restores bursar's default.
    #[must_use]
    pub fn approval_ttl_secs(mut self, secs: Option<u32>) -> Self {
        self.approval_ttl_secs = Some(secs);
        self
    }

    /// Sets the stored `flag_all_new_vendors` setting. `authorize` does not
    /// read it; a `new_vendor` policy
    /// ([`SpendingControls::flag_all_new_vendors`](crate::policy::SpendingControls::flag_all_new_vendors))
    /// is what requires approval for new merchants.
    #[must_use]
    pub fn flag_all_new_vendors(mut self, flag: bool) -> Self {
        self.flag_all_new_vendors = Some(flag);
        self
    }

    /// Where the host sends notifications (bursar sends none); `None` clears it.
    #[must_use]
    pub fn notification_email(mut self, email: Option<String>) -> Self {
        self.notification_email = Some(email);
        self
    }

    /// Approve requests that no policy matched.
    #[must_use]
    pub fn default_allow(mut self, allow: bool) -> Self {
        self.default_allow = Some(allow);
        self
    }
}

fn check_ttl(field: &str, secs: Option<u32>, max: u32) -> Result<Option<u32>> {
    match secs {
        Some(s) if s == 0 || s > max => Err(Error::invalid(
            field,
            format!("{s} seconds is out of range; use 1 to {max}"),
        )),
        other => Ok(other),
    }
}

fn check_email(email: Option<String>) -> Result<Option<String>> {
    let Some(email) = email else {
        return Ok(None);
    };
    let email = email.trim().to_owned();
    let chars = email.chars().count();
    let well_formed = email
        .split_once('@')
        .is_some_and(|(user, host)| !user.is_empty() && host.contains('.') && !host.contains('@'));
    if !well_formed || chars > MAX_NOTIFICATION_EMAIL_LEN || email.chars().any(char::is_whitespace)
    {
        return Err(Error::invalid(
            "notification_email",
            format!(
                "{email:?} is not an email address of at most {MAX_NOTIFICATION_EMAIL_LEN} characters"
            ),
        ));
    }
    Ok(Some(email))
}

/// The settings an audit entry shows before and after a change.
fn settings_view(t: &tenant::Model) -> serde_json::Value {
    serde_json::json!({
        "is_active": t.is_active,
        "timezone": t.timezone,
        "default_effect": t.default_effect,
        "settings": t.settings,
    })
}

impl Tenants<'_> {
    async fn set_active(&self, id: TenantId, active: bool) -> Result<tenant::Model> {
        let action = if active {
            "tenant.reactivated"
        } else {
            "tenant.deactivated"
        };
        self.change(id, action, move |row| {
            row.is_active = active;
            Ok(())
        })
        .await
    }

    /// Locks the tenant row, applies `edit`, and when anything changed
    /// writes it and appends `action` to the tenant's audit chain, in one
    /// transaction.
    async fn change<F>(&self, id: TenantId, action: &'static str, edit: F) -> Result<tenant::Model>
    where
        F: Fn(&mut tenant::Model) -> Result<()>,
    {
        crate::store::repo::retry_contention(|| async {
            let ctx = crate::store::repo::Ctx::scoped(self.store, id);
            let txn = ctx.begin_write().await?;
            let result = async {
                let before = tenant::Entity::find_by_id(id)
                    .lock(sea_orm::sea_query::LockType::NoKeyUpdate)
                    .one(&txn)
                    .await?
                    .ok_or_else(|| Error::not_found(TenantId::ENTITY, id))?;
                let mut after = before.clone();
                edit(&mut after)?;
                if after == before {
                    return Ok(before);
                }
                let now = self.store.clock().now();
                after.updated_at = now;
                let saved = tenant::ActiveModel::from(after)
                    .reset_all()
                    .update(&txn)
                    .await?;
                let details = crate::entity::audit_log::AuditDetails {
                    before: Some(settings_view(&before)),
                    after: Some(settings_view(&saved)),
                    ..Default::default()
                };
                crate::audit::append(
                    &txn,
                    id,
                    crate::audit::AuditEntry::new(action, "tenant")
                        .resource_id(id)
                        .details(details),
                    now,
                )
                .await?;
                Ok(saved)
            }
            .await;
            crate::store::repo::finish(txn, result).await
        })
        .await
    }
}
