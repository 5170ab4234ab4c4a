//! Reservations: atomic, all-or-nothing holds on every budget window that
//! applies to a request, and their capture, release, expiry and refund.
//!
//! Every function here takes the connection or transaction to run on, so that
//! [`authorize`](crate::store::TenantScope::authorize) can reserve inside its own
//! transaction and a host can call [`Reservations`] on its own. See
//! `docs/budgets.md` for the protocol and the ledger.
//!
//! # Lock order
//!
//! Every write path in bursar takes its row locks in this one order (written
//! out in `docs/budgets.md`, "Lock order"), so that no two transactions wait
//! on each other in a cycle:
//!
//! 1. the subject row (approval request, transaction by charge id);
//! 2. the run row, when an action names a run, or the run being killed;
//! 3. the reservation row(s) (`load` with `lock`);
//! 4. budget windows by ascending id (`current_windows`, `locked_windows`:
//!    `FOR NO KEY UPDATE`);
//! 5. the agent row, for velocity (`authorize`);
//! 6. merchants (`record_seen`), then the purchase intent's idempotency key
//!    (`authorize` records the intent once, with its outcome; its writes
//!    after the windows' update go together, in this order:
//!    `crate::store::repo::Deferred`);
//! 7. the tenant's audit chain ([`crate::audit`]), always last.
//!
//! A group-commit batch ([`GroupCommit`](crate::store::GroupCommit)) runs
//! several requests of one tenant in one transaction, each in this order; the
//! locks of the earlier ones are held until the batch commits (see
//! `docs/budgets.md`, "Lock order").

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sea_orm::sea_query::{CaseStatement, Expr, LockType};
use sea_orm::{
    ActiveEnum, ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, Set,
};
use serde::Serialize;

use crate::budget::{Principal, Scope, Shortfall, WindowBalance, check_fit};
use crate::entity::{
    budget, budget_window, ledger_entry,
    ledger_entry::{
        LedgerBucket as Bucket, LedgerDirection as Direction, LedgerEntryType as EntryType,
    },
    reservation,
    reservation::ReservationStatus,
    reservation_line,
};
use crate::id::{
    AgentId, BudgetId, BudgetWindowId, LedgerEntryId, PurchaseIntentId, ReservationId,
    ReservationLineId, TenantId,
};
use crate::money::{Amount, Currency, Money};
use crate::page::list_page;
use crate::page::{Page, PageRequest};
use crate::store::repo::{Ctx, Deferred, finish, retry_contention};
use crate::{Error, Result};

mod capture;
mod checks;
mod ledger;
mod reconcile;
mod refund;
mod release;
mod reserve;
mod rows;
mod sweep;
mod windows;

pub use capture::capture_in;
pub use checks::MAX_REFUND_ID_LEN;
pub use reconcile::reconcile_in;
pub use release::end_hold_in;
pub use reserve::reserve_in;

pub(crate) use capture::*;
pub(crate) use checks::*;
use ledger::*;
pub(crate) use refund::*;
pub(crate) use reserve::*;
pub(crate) use rows::*;
use sweep::*;
pub(crate) use windows::*;

/// Longest accepted idempotency key (or refund id), in characters: the width
/// of the columns that hold it.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = bursar_migration::widths::IDEMPOTENCY_KEY as usize;

/// A request to hold money on every applicable budget window.
///
/// ```
/// use bursar::budget::Principal;
/// use bursar::id::AgentId;
/// use bursar::money::Money;
/// use bursar::store::ReserveRequest;
/// use chrono::{Duration, Utc};
/// let req = ReserveRequest::new(Money::parse("12.50", "USD")?, Utc::now() + Duration::minutes(15))
///     .principal(Principal::agent(AgentId::new()))
///     .idempotency_key("order-42");
/// assert_eq!(req.amount().amount().to_string(), "12.5");
/// # Ok::<(), bursar::money::MoneyError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReserveRequest {
    amount: Money,
    expires_at: DateTime<Utc>,
    principal: Option<Principal>,
    idempotency_key: Option<String>,
    purchase_intent_id: Option<PurchaseIntentId>,
}

impl ReserveRequest {
    /// Hold `amount` until `expires_at` (after which [`ReservationRepository::expire_due`]
    /// returns it to the budgets).
    #[must_use]
    pub fn new(amount: Money, expires_at: DateTime<Utc>) -> Self {
        Self {
            amount,
            expires_at,
            principal: None,
            idempotency_key: None,
            purchase_intent_id: None,
        }
    }

    /// Who is spending: the budgets of the agent, and of its team, project and
    /// run, apply besides the tenant's. Without a principal only the tenant's
    /// own budgets apply.
    #[must_use]
    pub fn principal(mut self, principal: Principal) -> Self {
        self.principal = Some(principal);
        self
    }

    /// A key that makes a retried call return the first reservation instead
    /// of holding the money twice.
    #[must_use]
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Links the reservation to the purchase intent it is for.
    #[must_use]
    pub fn purchase_intent(mut self, id: PurchaseIntentId) -> Self {
        self.purchase_intent_id = Some(id);
        self
    }

    /// The amount to hold.
    #[must_use]
    pub fn amount(&self) -> Money {
        self.amount
    }

    /// Who is spending, if set.
    #[must_use]
    pub fn principal_of(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }
}

/// What [`ReservationRepository::reserve`] did.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
#[non_exhaustive]
// Returned once per call and never stored in bulk: boxing would only cost an
// allocation.
#[allow(clippy::large_enum_variant)]
pub enum ReserveOutcome {
    /// The amount is held on every applicable window.
    Reserved {
        /// The reservation.
        reservation: reservation::Model,
        /// Its lines, one per budget window.
        lines: Vec<reservation_line::Model>,
        /// Whether this is the first call's reservation returned again for a
        /// repeated idempotency key (no money moved this time).
        replayed: bool,
    },
    /// At least one budget did not have room; nothing was held anywhere.
    Rejected {
        /// Every budget that did not fit, most constrained first.
        shortfalls: Vec<Shortfall>,
    },
}

impl ReserveOutcome {
    /// The reservation, when the amount was held.
    #[must_use]
    pub fn reservation(&self) -> Option<&reservation::Model> {
        match self {
            Self::Reserved { reservation, .. } => Some(reservation),
            Self::Rejected { .. } => None,
        }
    }

    /// The shortfalls, when the amount was refused.
    #[must_use]
    pub fn shortfalls(&self) -> &[Shortfall] {
        match self {
            Self::Reserved { .. } => &[],
            Self::Rejected { shortfalls } => shortfalls,
        }
    }
}

/// A window whose stored balance differs from the sum of its ledger entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Discrepancy {
    /// The window.
    pub window_id: BudgetWindowId,
    /// Its budget.
    pub budget_id: BudgetId,
    /// `spent` as stored.
    pub stored_spent: Decimal,
    /// `spent` as the ledger says.
    pub ledger_spent: Decimal,
    /// `reserved` as stored.
    pub stored_reserved: Decimal,
    /// `reserved` as the ledger says.
    pub ledger_reserved: Decimal,
    /// What the ledger records as posted beyond the limit (`overspend`
    /// entries): settled charges that did not fit.
    pub overspent: Decimal,
    /// Whether `spent + reserved > limit + overspent`: the window is over its
    /// limit by more than the recorded overspend explains.
    pub over_limit: bool,
}

/// The result of [`ReservationRepository::reconcile`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Reconciliation {
    /// Windows checked.
    pub windows: usize,
    /// Ledger entries summed.
    pub entries: usize,
    /// Windows whose balance does not match the ledger or exceeds the limit.
    pub discrepancies: Vec<Discrepancy>,
    /// Windows that settled charges took over their limit, with the amount
    /// posted as overspend: not a discrepancy, a fact to look at.
    pub overspent: Vec<(BudgetWindowId, Decimal)>,
}

impl Reconciliation {
    /// Whether every window matches its ledger and is within its limit.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.discrepancies.is_empty()
    }
}

/// The reservation repository of one tenant. Get it from
/// [`TenantScope::reservations`](crate::store::TenantScope::reservations).
#[derive(Debug)]
pub struct Reservations<'a> {
    ctx: Ctx<'a>,
}

impl<'a> Reservations<'a> {
    pub(crate) fn new(ctx: Ctx<'a>) -> Self {
        Self { ctx }
    }
}

/// Reservations of one tenant: holds on its budgets, and their capture,
/// release, expiry and refund.
#[async_trait]
pub trait ReservationRepository {
    /// Holds the request's amount on every applicable budget window, all or
    /// nothing, in one transaction. See [`reserve_in`] for the protocol.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a zero, negative or unstorable amount, an
    /// expiry not after now, or a bad idempotency key; [`Error::NotFound`] when
    /// the principal's agent is not this tenant's (a team, project or run of
    /// another tenant simply matches none of this tenant's budgets);
    /// [`Error::Conflict`] when the idempotency key was used for a
    /// different request (amount, currency, agent, run or purchase intent);
    /// [`Error::Contention`] when the database stayed contended through
    /// every retry; [`Error::Database`].
    async fn reserve(&self, request: ReserveRequest) -> Result<ReserveOutcome>;
    /// One reservation with its lines.
    ///
    /// # Errors
    /// [`Error::NotFound`] when it does not exist in this tenant.
    async fn get(
        &self,
        id: ReservationId,
    ) -> Result<(reservation::Model, Vec<reservation_line::Model>)>;
    /// Reservations, oldest first, filtered by status (`held`, `captured`,
    /// `released`, `expired`) and creation time.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad page or status; [`Error::Database`].
    async fn list(&self, page: PageRequest) -> Result<Page<reservation::Model>>;
    /// Records the settlement of a reservation: `amount` becomes spent on
    /// every window the reservation holds and the rest of the hold is
    /// released. The settled amount is a fact and is always posted (see
    /// `docs/budgets.md`, "Settlement"):
    ///
    /// - zero settles with nothing spent (the whole hold returns);
    /// - more than was held is posted too: what still fits a window is an
    ///   ordinary capture, the excess an `overspend` ledger entry (the window
    ///   may go over its limit and then refuses new reservations), audited at
    ///   level warning;
    /// - a reservation that already expired or was released is captured late
    ///   on the windows it was authorized in, with the same rule.
    ///
    /// Capturing an already captured reservation again with the same amount
    /// changes nothing; with another amount it is a [`Error::Conflict`] (a
    /// second, distinct charge is recorded with its own charge id through
    /// [`PaymentRepository::record_transaction`](crate::store::PaymentRepository::record_transaction)).
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Conflict`] when the reservation's purchase
    /// intent is not approved (a hold waiting for a human, or rejected by one,
    /// cannot be captured) or it was captured for another amount;
    /// [`Error::Invalid`] (a negative or unstorable amount, or a currency
    /// other than the reservation's); [`Error::Database`].
    async fn capture(&self, id: ReservationId, amount: Money) -> Result<reservation::Model>;
    /// Releases a held reservation: the whole hold returns to the budgets.
    /// Releasing an already released reservation changes nothing.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Conflict`] when it was captured or expired,
    /// [`Error::Database`].
    async fn release(&self, id: ReservationId) -> Result<reservation::Model>;
    /// Expires every held reservation of this tenant whose expiry is at or
    /// before `now`, returning its hold to the budgets. A hold that a pending
    /// approval request owns is expired together with that request (the
    /// request and its purchase intent become `expired`), so an approval
    /// never stays pending on a hold that is gone. Returns how many
    /// reservations were expired. Safe to run from several processes at once.
    ///
    /// # Errors
    /// [`Error::Database`].
    async fn expire_due(&self, now: DateTime<Utc>) -> Result<u64>;
    /// Refunds `amount` of a captured reservation: spent goes down on the windows
    /// it was captured in (even past ones), never below zero. `refund_id`
    /// identifies the refund within the tenant: the same id again for the same
    /// amount changes nothing, while distinct ids add up (refund 30, then 20,
    /// leaves 50 refunded).
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Conflict`] when the reservation is not
    /// captured or the refund id was already used for another amount or
    /// reservation; [`Error::Invalid`] for a zero, negative or unstorable
    /// amount, a refund larger than what is left to refund, a blank or
    /// over-long refund id, or another currency; [`Error::Database`].
    async fn refund(
        &self,
        id: ReservationId,
        amount: Money,
        refund_id: &str,
    ) -> Result<reservation::Model>;
    /// Recomputes every window's spent and reserved from the ledger and reports
    /// each window where they differ from the stored balance, or where
    /// `spent + reserved > limit` by more than the window's recorded
    /// overspend. Windows with overspend are listed in
    /// [`Reconciliation::overspent`] either way.
    ///
    /// # Errors
    /// [`Error::Database`].
    async fn reconcile(&self) -> Result<Reconciliation>;
}

#[async_trait]
impl ReservationRepository for Reservations<'_> {
    #[tracing::instrument(level = "info", name = "bursar.reservations.reserve", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn reserve(&self, request: ReserveRequest) -> Result<ReserveOutcome> {
        retry_contention(|| self.reserve_once(&request)).await
    }

    #[tracing::instrument(level = "debug", name = "bursar.reservations.get", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn get(
        &self,
        id: ReservationId,
    ) -> Result<(reservation::Model, Vec<reservation_line::Model>)> {
        let conn = &self.ctx.db;
        let found = load(conn, self.ctx.tenant, id, false).await?;
        let lines = lines_of(conn, self.ctx.tenant, id).await?;
        Ok((found, lines))
    }

    #[tracing::instrument(level = "debug", name = "bursar.reservations.list", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn list(&self, page: PageRequest) -> Result<Page<reservation::Model>> {
        let mut query =
            reservation::Entity::find().filter(reservation::Column::TenantId.eq(self.ctx.tenant));
        if let Some(status) = page.status_filter() {
            let status = ReservationStatus::try_from_value(&status.to_owned()).map_err(|_| {
                Error::invalid(
                    "status",
                    format!("{status:?} is not one of held, captured, released, expired"),
                )
            })?;
            query = query.filter(reservation::Column::Status.eq(status));
        }
        list_page(
            &self.ctx.db,
            query,
            reservation::Column::CreatedAt,
            reservation::Column::Id,
            &page,
        )
        .await
    }

    #[tracing::instrument(level = "info", name = "bursar.reservations.capture", skip_all, fields(tenant = %self.ctx.tenant, reservation = %id))]
    async fn capture(&self, id: ReservationId, amount: Money) -> Result<reservation::Model> {
        let now = self.ctx.now();
        retry_contention(|| async {
            let txn = self.ctx.begin_write().await?;
            let result = capture_in(&txn, self.ctx.tenant, id, amount, now).await;
            finish(txn, result).await
        })
        .await
    }

    #[tracing::instrument(level = "info", name = "bursar.reservations.release", skip_all, fields(tenant = %self.ctx.tenant, reservation = %id))]
    async fn release(&self, id: ReservationId) -> Result<reservation::Model> {
        let now = self.ctx.now();
        retry_contention(|| async {
            let txn = self.ctx.begin_write().await?;
            let result =
                end_hold_in(&txn, self.ctx.tenant, id, ReservationStatus::Released, now).await;
            finish(txn, result).await
        })
        .await
    }

    #[tracing::instrument(level = "info", name = "bursar.reservations.expire_due", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn expire_due(&self, now: DateTime<Utc>) -> Result<u64> {
        expire_due_in(&self.ctx, now).await
    }

    #[tracing::instrument(level = "info", name = "bursar.reservations.refund", skip_all, fields(tenant = %self.ctx.tenant, reservation = %id))]
    async fn refund(
        &self,
        id: ReservationId,
        amount: Money,
        refund_id: &str,
    ) -> Result<reservation::Model> {
        let now = self.ctx.now();
        retry_contention(|| async {
            let txn = self.ctx.begin_write().await?;
            let result = refund_in(&txn, self.ctx.tenant, id, amount, refund_id, None, now).await;
            finish(txn, result).await
        })
        .await
    }

    #[tracing::instrument(level = "info", name = "bursar.reservations.reconcile", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn reconcile(&self) -> Result<Reconciliation> {
        reconcile_in(&self.ctx.db, self.ctx.tenant).await
    }
}
