//! Paging: which page of a listing to return ([`PageRequest`]), one page of
//! rows ([`Page`]), and the query every listing runs. Re-exported from
//! [`store`](crate::store), where the listings are.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Largest page a listing returns.
pub const MAX_PAGE_SIZE: u64 = 500;
/// Page size when none is asked for.
pub const DEFAULT_PAGE_SIZE: u64 = 50;

/// Which page of a listing to return, and what to filter it by.
///
/// ```
/// use bursar::store::PageRequest;
/// let first = PageRequest::new().limit(20);
/// assert_eq!(first.offset_value(), 0);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest {
    limit: Option<u64>,
    offset: u64,
    status: Option<String>,
    created_from: Option<DateTime<Utc>>,
    created_before: Option<DateTime<Utc>>,
}

impl PageRequest {
    /// The first page of [`DEFAULT_PAGE_SIZE`] rows, unfiltered.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// At most `limit` rows (1 to [`MAX_PAGE_SIZE`]).
    #[must_use]
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Skips the first `offset` rows.
    #[must_use]
    pub fn offset(mut self, offset: u64) -> Self {
        self.offset = offset;
        self
    }

    /// Only rows in this status (its stored name, e.g. `"active"`).
    #[must_use]
    pub fn status(mut self, status: impl Into<String>) -> Self {
        self.status = Some(status.into());
        self
    }

    /// Only rows created at or after `from` and before `before`.
    #[must_use]
    pub fn created_between(
        mut self,
        from: Option<DateTime<Utc>>,
        before: Option<DateTime<Utc>>,
    ) -> Self {
        self.created_from = from;
        self.created_before = before;
        self
    }

    /// The page size, checked against [`MAX_PAGE_SIZE`].
    ///
    /// # Errors
    /// [`Error::Invalid`] (field `limit`) for 0 or more than [`MAX_PAGE_SIZE`].
    pub fn limit_value(&self) -> Result<u64> {
        match self.limit {
            None => Ok(DEFAULT_PAGE_SIZE),
            Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
            Some(n) => Err(Error::invalid(
                "limit",
                format!("{n} is out of range; a page holds 1 to {MAX_PAGE_SIZE} rows"),
            )),
        }
    }

    /// Rows skipped.
    #[must_use]
    pub fn offset_value(&self) -> u64 {
        self.offset
    }

    /// The status filter.
    #[must_use]
    pub fn status_filter(&self) -> Option<&str> {
        self.status.as_deref()
    }

    /// The creation-time filter: `[from, before)`.
    #[must_use]
    pub fn created_range(&self) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        (self.created_from, self.created_before)
    }
}

/// One page of a listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Page<T> {
    /// The rows, oldest first.
    pub items: Vec<T>,
    /// The offset of the next page, when there may be one.
    pub next_offset: Option<u64>,
}

/// Builds a page from up to `limit + 1` rows fetched at `offset`.
pub(crate) fn page_of<T>(mut items: Vec<T>, offset: u64, limit: u64) -> Page<T> {
    let more = items.len() as u64 > limit;
    items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Page {
        next_offset: more.then(|| offset + limit),
        items,
    }
}

/// Runs a tenant-filtered `query` as one page: applies the page's creation-time
/// range on `created`, orders by `order` (oldest first) and pages.
pub(crate) async fn list_page<E>(
    db: &impl sea_orm::ConnectionTrait,
    mut query: sea_orm::Select<E>,
    created: E::Column,
    order: E::Column,
    page: &PageRequest,
) -> Result<Page<E::Model>>
where
    E: sea_orm::EntityTrait,
    E::Model: Send + Sync,
{
    use sea_orm::{ColumnTrait, QueryFilter, QueryOrder, QuerySelect};
    let limit = page.limit_value()?;
    let (from, before) = page.created_range();
    if let Some(from) = from {
        query = query.filter(created.gte(from));
    }
    if let Some(before) = before {
        query = query.filter(created.lt(before));
    }
    let items = query
        .order_by_asc(order)
        .offset(page.offset_value())
        .limit(limit + 1)
        .all(db)
        .await?;
    Ok(page_of(items, page.offset_value(), limit))
}
