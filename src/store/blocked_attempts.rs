//! Blocked attempts (read side): every request that was rejected, with the
//! reason code and the policy that rejected it. Written by `authorize`.

use async_trait::async_trait;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::entity::blocked_attempt;
use crate::id::BlockedAttemptId;
use crate::page::list_page;
use crate::page::{Page, PageRequest};
use crate::store::repo::Ctx;
use crate::{Error, Result};

/// Longest reason code, in bytes.
const MAX_REASON_CODE_LEN: usize = 64;

/// Blocked attempts of one tenant (read side).
#[async_trait]
pub trait BlockedAttemptRepository {
    /// One blocked attempt.
    ///
    /// # Errors
    /// [`Error::NotFound`] when it is not this tenant's.
    async fn get(&self, id: BlockedAttemptId) -> Result<blocked_attempt::Model>;
    /// Blocked attempts, oldest first. The page's status filter selects a
    /// reason code (e.g. `PageRequest::new().status("MERCHANT_BLOCKED")`), its
    /// creation-time range the period.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad page, or a filter that is not a reason
    /// code (uppercase letters, digits and `_`).
    async fn list(&self, page: PageRequest) -> Result<Page<blocked_attempt::Model>>;
}

/// The SeaORM [`BlockedAttemptRepository`]. Get it from
/// [`TenantScope::blocked_attempts`](crate::store::TenantScope::blocked_attempts).
#[derive(Debug)]
pub struct BlockedAttempts<'a> {
    ctx: Ctx<'a>,
}

impl<'a> BlockedAttempts<'a> {
    pub(crate) fn new(ctx: Ctx<'a>) -> Self {
        Self { ctx }
    }
}

fn is_reason_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= MAX_REASON_CODE_LEN
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

#[async_trait]
impl BlockedAttemptRepository for BlockedAttempts<'_> {
    #[tracing::instrument(level = "debug", name = "bursar.blocked_attempts.get", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn get(&self, id: BlockedAttemptId) -> Result<blocked_attempt::Model> {
        blocked_attempt::Entity::find()
            .filter(blocked_attempt::Column::TenantId.eq(self.ctx.tenant))
            .filter(blocked_attempt::Column::Id.eq(id))
            .one(&self.ctx.db)
            .await?
            .ok_or_else(|| Error::not_found(BlockedAttemptId::ENTITY, id))
    }

    #[tracing::instrument(level = "debug", name = "bursar.blocked_attempts.list", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn list(&self, page: PageRequest) -> Result<Page<blocked_attempt::Model>> {
        let mut query = blocked_attempt::Entity::find()
            .filter(blocked_attempt::Column::TenantId.eq(self.ctx.tenant));
        if let Some(code) = page.status_filter() {
            if !is_reason_code(code) {
                return Err(Error::invalid(
                    "status",
                    format!(
                        "{code:?} is not a reason code (1 to {MAX_REASON_CODE_LEN} uppercase letters, digits and '_')"
                    ),
                ));
            }
            query = query.filter(blocked_attempt::Column::ReasonCode.eq(code));
        }
        list_page(
            &self.ctx.db,
            query,
            blocked_attempt::Column::CreatedAt,
            blocked_attempt::Column::Id,
            &page,
        )
        .await
    }
}
