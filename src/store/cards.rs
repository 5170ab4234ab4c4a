//! Virtual cards (read side): single-purpose cards issued for approved
//! purchases.

use async_trait::async_trait;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::entity::virtual_card::{self, VirtualCardStatus};
use crate::id::VirtualCardId;
use crate::page::list_page;
use crate::page::{Page, PageRequest};
use crate::store::repo::Ctx;
use crate::store::status::parse_status;
use crate::{Error, Result};

/// Virtual cards of one tenant (read side).
#[async_trait]
pub trait CardRepository {
    /// One card.
    ///
    /// # Errors
    /// [`Error::NotFound`] when it is not this tenant's.
    async fn get(&self, id: VirtualCardId) -> Result<virtual_card::Model>;
    /// Cards, oldest first, filtered by status (`active`, `frozen`, `used`,
    /// `expired`, `closed`) and creation time.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad page or status.
    async fn list(&self, page: PageRequest) -> Result<Page<virtual_card::Model>>;
}

/// The SeaORM [`CardRepository`]. Get it from
/// [`TenantScope::cards`](crate::store::TenantScope::cards).
#[derive(Debug)]
pub struct Cards<'a> {
    ctx: Ctx<'a>,
}

impl<'a> Cards<'a> {
    pub(crate) fn new(ctx: Ctx<'a>) -> Self {
        Self { ctx }
    }
}

#[async_trait]
impl CardRepository for Cards<'_> {
    #[tracing::instrument(level = "debug", name = "bursar.cards.get", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn get(&self, id: VirtualCardId) -> Result<virtual_card::Model> {
        virtual_card::Entity::find()
            .filter(virtual_card::Column::TenantId.eq(self.ctx.tenant))
            .filter(virtual_card::Column::Id.eq(id))
            .one(&self.ctx.db)
            .await?
            .ok_or_else(|| Error::not_found(VirtualCardId::ENTITY, id))
    }

    #[tracing::instrument(level = "debug", name = "bursar.cards.list", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn list(&self, page: PageRequest) -> Result<Page<virtual_card::Model>> {
        let mut query =
            virtual_card::Entity::find().filter(virtual_card::Column::TenantId.eq(self.ctx.tenant));
        if let Some(status) = page.status_filter() {
            let status: VirtualCardStatus = parse_status(status)?;
            query = query.filter(virtual_card::Column::Status.eq(status));
        }
        list_page(
            &self.ctx.db,
            query,
            virtual_card::Column::CreatedAt,
            virtual_card::Column::Id,
            &page,
        )
        .await
    }
}
