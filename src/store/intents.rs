//! Purchase intents (read side; `authorize` writes them).

use async_trait::async_trait;
use sea_orm::{ActiveEnum, ColumnTrait, EntityTrait, QueryFilter};

use crate::entity::purchase_intent::{self, PurchaseIntentStatus};
use crate::id::PurchaseIntentId;
use crate::page::list_page;
use crate::page::{Page, PageRequest};
use crate::store::repo::Ctx;
use crate::{Error, Result};

/// Purchase intents of one tenant.
#[async_trait]
pub trait PurchaseIntentRepository {
    /// One purchase intent.
    ///
    /// # Errors
    /// [`Error::NotFound`] when it is not this tenant's.
    async fn get(&self, id: PurchaseIntentId) -> Result<purchase_intent::Model>;
    /// Intents, oldest first, filtered by status (`pending`, `approved`,
    /// `rejected`, `pending_approval`, `expired`, `cancelled`) and creation time.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad page or status.
    async fn list(&self, page: PageRequest) -> Result<Page<purchase_intent::Model>>;
}

/// The SeaORM [`PurchaseIntentRepository`]. Get it from
/// [`TenantScope::purchase_intents`](crate::store::TenantScope::purchase_intents).
#[derive(Debug)]
pub struct PurchaseIntents<'a> {
    ctx: Ctx<'a>,
}

impl<'a> PurchaseIntents<'a> {
    pub(crate) fn new(ctx: Ctx<'a>) -> Self {
        Self { ctx }
    }
}

#[async_trait]
impl PurchaseIntentRepository for PurchaseIntents<'_> {
    async fn get(&self, id: PurchaseIntentId) -> Result<purchase_intent::Model> {
        purchase_intent::Entity::find()
            .filter(purchase_intent::Column::TenantId.eq(self.ctx.tenant))
            .filter(purchase_intent::Column::Id.eq(id))
            .one(&self.ctx.db)
            .await?
            .ok_or_else(|| Error::not_found(PurchaseIntentId::ENTITY, id))
    }

    async fn list(&self, page: PageRequest) -> Result<Page<purchase_intent::Model>> {
        let mut query = purchase_intent::Entity::find()
            .filter(purchase_intent::Column::TenantId.eq(self.ctx.tenant));
        if let Some(status) = page.status_filter() {
            let status = PurchaseIntentStatus::try_from_value(&status.to_owned()).map_err(|_| {
                Error::invalid(
                    "status",
                    format!(
                        "{status:?} is not one of pending, approved, rejected, pending_approval, expired, cancelled"
                    ),
                )
            })?;
            query = query.filter(purchase_intent::Column::Status.eq(status));
        }
        list_page(
            &self.ctx.db,
            query,
            purchase_intent::Column::CreatedAt,
            purchase_intent::Column::Id,
            &page,
        )
        .await
    }
}
