//! Card transactions (read side), as reported by the card provider.

use async_trait::async_trait;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::entity::transaction::{self, TransactionStatus};
use crate::id::TransactionId;
use crate::page::list_page;
use crate::page::{Page, PageRequest};
use crate::store::repo::Ctx;
use crate::store::status::parse_status;
use crate::{Error, Result};

/// Longest provider charge id, in characters.
const MAX_CHARGE_ID_LEN: usize = crate::store::payments::MAX_PROVIDER_ID_LEN;

/// Card transactions of one tenant (read side).
#[async_trait]
pub trait TransactionRepository {
    /// One transaction.
    ///
    /// # Errors
    /// [`Error::NotFound`] when it is not this tenant's.
    async fn get(&self, id: TransactionId) -> Result<transaction::Model>;
    /// The transaction with the provider's charge id (unique per tenant), e.g.
    /// to recognise a webhook delivered twice.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Invalid`] (field `provider_charge_id`)
    /// for an empty or over-long id.
    async fn by_provider_charge_id(&self, charge_id: &str) -> Result<transaction::Model>;
    /// Transactions, oldest first, filtered by status (`authorized`,
    /// `captured`, `failed`, `partially_refunded`, `refunded`,
    /// `needs_attention`) and creation time.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad page or status.
    async fn list(&self, page: PageRequest) -> Result<Page<transaction::Model>>;
}

/// The SeaORM [`TransactionRepository`]. Get it from
/// [`TenantScope::transactions`](crate::store::TenantScope::transactions).
#[derive(Debug)]
pub struct Transactions<'a> {
    ctx: Ctx<'a>,
}

impl<'a> Transactions<'a> {
    pub(crate) fn new(ctx: Ctx<'a>) -> Self {
        Self { ctx }
    }
}

#[async_trait]
impl TransactionRepository for Transactions<'_> {
    #[tracing::instrument(level = "debug", name = "bursar.transactions.get", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn get(&self, id: TransactionId) -> Result<transaction::Model> {
        transaction::Entity::find()
            .filter(transaction::Column::TenantId.eq(self.ctx.tenant))
            .filter(transaction::Column::Id.eq(id))
            .one(&self.ctx.db)
            .await?
            .ok_or_else(|| Error::not_found(TransactionId::ENTITY, id))
    }

    #[tracing::instrument(level = "debug", name = "bursar.transactions.by_provider_charge_id", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn by_provider_charge_id(&self, charge_id: &str) -> Result<transaction::Model> {
        if charge_id.is_empty() || charge_id.chars().count() > MAX_CHARGE_ID_LEN {
            return Err(Error::invalid(
                "provider_charge_id",
                format!("{charge_id:?} must be 1 to {MAX_CHARGE_ID_LEN} characters"),
            ));
        }
        transaction::Entity::find()
            .filter(transaction::Column::TenantId.eq(self.ctx.tenant))
            .filter(transaction::Column::ProviderChargeId.eq(charge_id))
            .one(&self.ctx.db)
            .await?
            .ok_or_else(|| Error::not_found(TransactionId::ENTITY, charge_id))
    }

    #[tracing::instrument(level = "debug", name = "bursar.transactions.list", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn list(&self, page: PageRequest) -> Result<Page<transaction::Model>> {
        let mut query =
            transaction::Entity::find().filter(transaction::Column::TenantId.eq(self.ctx.tenant));
        if let Some(status) = page.status_filter() {
            let status: TransactionStatus = parse_status(status)?;
            query = query.filter(transaction::Column::Status.eq(status));
        }
        list_page(
            &self.ctx.db,
            query,
            transaction::Column::CreatedAt,
            transaction::Column::Id,
            &page,
        )
        .await
    }
}
