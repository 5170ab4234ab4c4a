//! Tenants: the one table that is not scoped by a tenant.

use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set, TransactionTrait};

use crate::entity::tenant;
use crate::id::TenantId;
use crate::money::Currency;
use crate::store::Store;
use crate::{Error, Result};

/// Longest tenant name, in characters.
pub const MAX_NAME_LEN: usize = 200;
/// Longest slug, in bytes.
pub const MAX_SLUG_LEN: usize = 63;

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

    /// The tenant's settings (TTLs, separation of duties, ...).
    #[must_use]
    pub fn settings(mut self, settings: tenant::TenantSettings) -> Self {
        self.settings = settings;
        self
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
}

pub(crate) fn validate_name(field: &str, name: &str) -> Result<String> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    let chars = trimmed.chars().count();
    if chars > MAX_NAME_LEN {
        return Err(Error::invalid(
            field,
            format!("is {chars} characters long; at most {MAX_NAME_LEN} are allowed"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            format!("{trimmed:?} contains control characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

pub(crate) fn validate_slug(field: &str, slug: &str) -> Result<String> {
    let ok = !slug.is_empty()
        && slug.len() <= MAX_SLUG_LEN
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-');
    if ok {
        Ok(slug.to_owned())
    } else {
        Err(Error::invalid(
            field,
            format!(
                "{slug:?} is not a slug: use 1 to {MAX_SLUG_LEN} lowercase letters, digits and inner '-'"
            ),
        ))
    }
}

/// Creates and finds tenants. Get it from [`Store::tenants`].
#[derive(Clone, Debug)]
pub struct Tenants {
    store: Store,
}

impl Tenants {
    pub(crate) fn new(store: Store) -> Self {
        Self { store }
    }

    /// Creates a tenant, with its built-in roles (admin, finance, developer,
    /// readonly; see [`RoleRepository::ensure_builtin`](crate::store::RoleRepository::ensure_builtin)),
    /// in one transaction.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field for a bad name, slug, time zone or
    /// currency; [`Error::Conflict`] when the slug is taken; [`Error::Database`].
    pub async fn create(&self, new: NewTenant) -> Result<tenant::Model> {
        let name = validate_name("name", &new.name)?;
        let slug = validate_slug("slug", &new.slug)?;
        let tz = crate::budget::parse_timezone(&new.timezone)?;
        let currency = Currency::from_code(&new.currency)?;
        let plan = validate_name("plan", &new.plan)?;
        let now = self.store.clock().now();
        let row = tenant::ActiveModel {
            id: Set(TenantId::new()),
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
        let txn = self.store.connection().begin().await?;
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

    /// The tenant with this id.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Database`].
    pub async fn get(&self, id: TenantId) -> Result<tenant::Model> {
        tenant::Entity::find_by_id(id)
            .one(self.store.connection())
            .await?
            .ok_or_else(|| Error::not_found(TenantId::ENTITY, id))
    }

    /// The tenant with this slug.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Database`].
    pub async fn by_slug(&self, slug: &str) -> Result<tenant::Model> {
        tenant::Entity::find()
            .filter(tenant::Column::Slug.eq(slug))
            .one(self.store.connection())
            .await?
            .ok_or_else(|| Error::not_found(TenantId::ENTITY, slug))
    }
}
