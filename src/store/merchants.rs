//! Known merchants: every merchant a tenant has bought from, for new-vendor
//! detection.
//!
//! A merchant is keyed by its *normalized name* ([`normalize_merchant_name`]):
//! trimmed, case-folded, inner whitespace collapsed to one space. "GitHub",
//! " github " and "GITHUB" are one merchant; "Git Hub" is another. The table is
//! written by `authorize` when a purchase is approved and read here.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryTrait, Set};

use crate::entity::merchant;
use crate::id::{MerchantId, TenantId};
use crate::page::list_page;
use crate::page::{Page, PageRequest};
use crate::store::repo::{Ctx, Deferred};
use crate::{Error, Result};

/// Longest merchant name or domain, in characters (after normalization): the
/// width of the columns that hold them.
pub const MAX_MERCHANT_LEN: usize = bursar_migration::widths::MERCHANT as usize;

/// The form merchants are compared and stored under: trimmed, case-folded
/// (Unicode lowercase), and every run of inner whitespace collapsed to one
/// space.
///
/// ```
/// use bursar::store::normalize_merchant_name;
/// assert_eq!(normalize_merchant_name("  Amazon   Web\tServices "), "amazon web services");
/// assert_eq!(normalize_merchant_name("GITHUB"), normalize_merchant_name("GitHub"));
/// ```
#[must_use]
pub fn normalize_merchant_name(name: &str) -> String {
    // Exactly the folding merchant policies match with, so "new vendor" and
    // "blocked merchant" agree on what one merchant is.
    crate::policy::fold_merchant(name)
}

fn checked_name(name: &str) -> Result<(String, String)> {
    let display = name.trim();
    let normalized = normalize_merchant_name(name);
    if normalized.is_empty() {
        return Err(Error::invalid("merchant_name", "must not be empty"));
    }
    if display.chars().count() > MAX_MERCHANT_LEN || normalized.chars().count() > MAX_MERCHANT_LEN {
        return Err(Error::invalid(
            "merchant_name",
            format!(
                "is {} characters long; at most {MAX_MERCHANT_LEN} are allowed",
                display.chars().count()
            ),
        ));
    }
    if display.chars().any(char::is_control) {
        return Err(Error::invalid(
            "merchant_name",
            format!("{display:?} contains control characters"),
        ));
    }
    Ok((display.to_owned(), normalized))
}

fn checked_domain(domain: &str) -> Result<String> {
    let d = domain.trim().trim_end_matches('.').to_lowercase();
    let ok = !d.is_empty()
        && d.chars().count() <= MAX_MERCHANT_LEN
        && d.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if ok {
        Ok(d)
    } else {
        Err(Error::invalid(
            "merchant_domain",
            format!("{domain:?} is not a domain name (letters, digits, '-' and '.')"),
        ))
    }
}

/// Records that `tenant` bought from the merchant `name` at `now`: inserts it
/// (first and last seen `now`, count 1) or, when it is known, moves its last
/// seen time to `now` and adds one to its count. A `domain` given fills or
/// replaces the stored one. One statement (`INSERT … ON CONFLICT DO UPDATE`),
/// so concurrent purchases never lose a count, and nothing is read back; runs
/// on the caller's executor (the `authorize` transaction).
///
/// # Errors
/// [`Error::Invalid`] naming `merchant_name` or `merchant_domain`;
/// [`Error::Database`].
pub(crate) async fn record_seen(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    name: &str,
    domain: Option<&str>,
    now: DateTime<Utc>,
) -> Result<()> {
    let mut writes = Deferred::default();
    hold_seen(
        conn.get_database_backend(),
        &mut writes,
        tenant,
        name,
        domain,
        now,
    )?;
    writes.flush(conn).await
}

/// [`record_seen`], added to `writes` ([`Deferred`]), sent with the
/// caller's next writes.
pub(crate) fn hold_seen(
    backend: sea_orm::DbBackend,
    writes: &mut Deferred,
    tenant: TenantId,
    name: &str,
    domain: Option<&str>,
    now: DateTime<Utc>,
) -> Result<()> {
    let (display, normalized) = checked_name(name)?;
    let domain = domain.map(checked_domain).transpose()?;
    let row = merchant::ActiveModel {
        id: Set(MerchantId::new()),
        tenant_id: Set(tenant),
        name: Set(display),
        normalized_name: Set(normalized.clone()),
        domain: Set(domain),
        first_seen_at: Set(now),
        last_seen_at: Set(now),
        purchase_count: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
    };
    let on_conflict =
        OnConflict::columns([merchant::Column::TenantId, merchant::Column::NormalizedName])
            .update_columns([merchant::Column::LastSeenAt, merchant::Column::UpdatedAt])
            .value(
                merchant::Column::PurchaseCount,
                Expr::col((merchant::Entity, merchant::Column::PurchaseCount)).add(1),
            )
            .value(
                merchant::Column::Domain,
                Expr::cust("COALESCE(excluded.domain, merchants.domain)"),
            )
            .to_owned();
    let upsert = merchant::Entity::insert(row)
        .on_conflict(on_conflict)
        .build(backend);
    // An insert or an update of the one row: one row changed either way.
    writes.add(upsert, 1);
    Ok(())
}

/// The registrable domain of a merchant URL or host, lower-cased
/// (`https://API.GitHub.com/x` → `github.com`); `None` when it has no host or
/// the host is itself a public suffix.
fn vendor_domain(raw: &str) -> Option<String> {
    let host = crate::policy::merchant_host(raw)?.to_ascii_lowercase();
    crate::policy::merchant::registrable_domain(&host).map(str::to_owned)
}

/// The normalized name under which `name` is recorded, for looking up its
/// history ([`is_known_vendor`]).
///
/// # Errors
/// [`Error::Invalid`] naming `merchant_name` (empty, too long, or with
/// control characters).
pub(crate) fn normalized_name(name: &str) -> Result<String> {
    checked_name(name).map(|(_, normalized)| normalized)
}

/// Whether the tenant already bought from this merchant, given the merchant
/// found under its normalized name ([`normalized_name`]; `None` when there is
/// none): its name is known, and when the request names a domain, the known
/// merchant was seen at the same registrable domain (a known name sent with
/// another site's domain is a new vendor, and so is a known name whose
/// domain was never recorded).
pub(crate) fn is_known_vendor(found: Option<&merchant::Model>, domain: Option<&str>) -> bool {
    let Some(found) = found else {
        return false;
    };
    match domain {
        None => true,
        Some(requested) => match (vendor_domain(requested), found.domain.as_deref()) {
            (Some(requested), Some(seen)) => vendor_domain(seen).as_deref() == Some(&*requested),
            _ => false,
        },
    }
}

async fn find_by_normalized(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    normalized: &str,
) -> Result<Option<merchant::Model>> {
    Ok(merchant::Entity::find()
        .filter(merchant::Column::TenantId.eq(tenant))
        .filter(merchant::Column::NormalizedName.eq(normalized))
        .all(conn)
        .await
        .map(crate::store::repo::first)?)
}

/// Known merchants of one tenant (read side).
#[async_trait]
pub trait MerchantRepository {
    /// One merchant.
    ///
    /// # Errors
    /// [`Error::NotFound`] when it is not this tenant's.
    async fn get(&self, id: MerchantId) -> Result<merchant::Model>;
    /// The merchant known under `name`'s normalized form.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the tenant has never bought from it;
    /// [`Error::Invalid`] for an empty or over-long name.
    async fn by_name(&self, name: &str) -> Result<merchant::Model>;
    /// Whether the tenant has bought from `name` before (by normalized name).
    ///
    /// # Errors
    /// [`Error::Invalid`] for an empty or over-long name; [`Error::Database`].
    async fn is_known(&self, name: &str) -> Result<bool>;
    /// Merchants in order of first purchase, filtered by creation time (the
    /// status filter does not apply).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad page, or a status filter.
    async fn list(&self, page: PageRequest) -> Result<Page<merchant::Model>>;
}

/// The SeaORM [`MerchantRepository`]. Get it from
/// [`TenantScope::merchants`](crate::store::TenantScope::merchants).
#[derive(Debug)]
pub struct Merchants<'a> {
    ctx: Ctx<'a>,
}

impl<'a> Merchants<'a> {
    pub(crate) fn new(ctx: Ctx<'a>) -> Self {
        Self { ctx }
    }
}

#[async_trait]
impl MerchantRepository for Merchants<'_> {
    #[tracing::instrument(level = "debug", name = "bursar.merchants.get", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn get(&self, id: MerchantId) -> Result<merchant::Model> {
        merchant::Entity::find()
            .filter(merchant::Column::TenantId.eq(self.ctx.tenant))
            .filter(merchant::Column::Id.eq(id))
            .one(&self.ctx.db)
            .await?
            .ok_or_else(|| Error::not_found(MerchantId::ENTITY, id))
    }

    #[tracing::instrument(level = "debug", name = "bursar.merchants.by_name", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn by_name(&self, name: &str) -> Result<merchant::Model> {
        let (_, normalized) = checked_name(name)?;
        find_by_normalized(&self.ctx.db, self.ctx.tenant, &normalized)
            .await?
            .ok_or_else(|| Error::not_found(MerchantId::ENTITY, normalized))
    }

    #[tracing::instrument(level = "debug", name = "bursar.merchants.is_known", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn is_known(&self, name: &str) -> Result<bool> {
        let (_, normalized) = checked_name(name)?;
        Ok(
            find_by_normalized(&self.ctx.db, self.ctx.tenant, &normalized)
                .await?
                .is_some(),
        )
    }

    #[tracing::instrument(level = "debug", name = "bursar.merchants.list", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn list(&self, page: PageRequest) -> Result<Page<merchant::Model>> {
        if let Some(status) = page.status_filter() {
            return Err(Error::invalid(
                "status",
                format!("{status:?}: merchants have no status"),
            ));
        }
        let query = merchant::Entity::find().filter(merchant::Column::TenantId.eq(self.ctx.tenant));
        list_page(
            &self.ctx.db,
            query,
            merchant::Column::CreatedAt,
            merchant::Column::Id,
            &page,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_case_folded_and_collapsed() {
        assert_eq!(normalize_merchant_name(" GitHub "), "github");
        assert_eq!(
            normalize_merchant_name("Amazon \t Web\nServices"),
            "amazon web services"
        );
        assert_eq!(normalize_merchant_name("ÉCOLE"), "école");
        assert_ne!(
            normalize_merchant_name("Git Hub"),
            normalize_merchant_name("GitHub")
        );
        assert!(checked_name("   ").is_err());
        assert!(checked_name(&"x".repeat(256)).is_err());
        assert_eq!(checked_domain("API.Stripe.com.").unwrap(), "api.stripe.com");
        assert!(checked_domain("https://stripe.com").is_err());
    }

    #[test]
    fn a_vendor_is_known_by_its_name_and_where_it_was_seen() {
        let now = chrono::Utc::now();
        let seen_at = |domain: Option<&str>| merchant::Model {
            id: MerchantId::new(),
            tenant_id: TenantId::new(),
            name: "GitHub".to_owned(),
            normalized_name: "github".to_owned(),
            domain: domain.map(str::to_owned),
            first_seen_at: now,
            last_seen_at: now,
            purchase_count: 1,
            created_at: now,
            updated_at: now,
        };
        let plain = seen_at(None);
        let github = seen_at(Some("github.com"));
        // Never bought from: new, with or without a domain.
        assert!(!is_known_vendor(None, None));
        assert!(!is_known_vendor(None, Some("github.com")));
        // Known by name, no domain asked about: known.
        assert!(is_known_vendor(Some(&plain), None));
        assert!(is_known_vendor(Some(&github), None));
        // A domain asked about must be where it was seen (registrable
        // domains compared), and a merchant seen nowhere is new to it.
        assert!(is_known_vendor(
            Some(&github),
            Some("https://API.GitHub.com/x")
        ));
        assert!(!is_known_vendor(Some(&github), Some("github.io")));
        assert!(!is_known_vendor(Some(&github), Some("not a domain")));
        assert!(!is_known_vendor(Some(&plain), Some("github.com")));
        assert_eq!(normalized_name("  GitHub ").unwrap(), "github");
        assert_eq!(normalized_name(" ").unwrap_err().code(), "invalid");
    }

    #[tokio::test]
    async fn record_seen_inserts_then_counts() {
        use crate::store::{NewTenant, TenantRepository};
        for store in crate::store::repo::test_stores().await {
            let t = store
                .tenants()
                .create(NewTenant::new("Acme", "acme"))
                .await
                .unwrap();
            let now = store.clock().now();
            let seen = |normalized: &'static str| {
                let conn = store.connection();
                async move {
                    find_by_normalized(conn, t.id, normalized)
                        .await
                        .unwrap()
                        .unwrap()
                }
            };
            record_seen(store.connection(), t.id, " GitHub ", None, now)
                .await
                .unwrap();
            let first = seen("github").await;
            assert_eq!((first.name.as_str(), first.purchase_count), ("GitHub", 1));
            let later = now + chrono::Duration::hours(1);
            record_seen(
                store.connection(),
                t.id,
                "GITHUB",
                Some("GitHub.com"),
                later,
            )
            .await
            .unwrap();
            let second = seen("github").await;
            assert_eq!(second.id, first.id);
            assert_eq!(second.purchase_count, 2);
            assert_eq!(second.name, "GitHub");
            assert_eq!(second.domain.as_deref(), Some("github.com"));
            assert_eq!(second.first_seen_at, first.first_seen_at);
            assert!(second.last_seen_at > first.last_seen_at);
            record_seen(store.connection(), t.id, "github", None, later)
                .await
                .unwrap();
            let third = seen("github").await;
            assert_eq!(third.purchase_count, 3);
            assert_eq!(third.domain.as_deref(), Some("github.com"), "kept");
        }
    }
}
