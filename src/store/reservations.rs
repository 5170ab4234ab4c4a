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
//! 1. the subject row (approval request, transaction by charge id, the
//!    purchase intent claiming its idempotency key);
//! 2. the run row, when an action names a run, or the run being killed;
//! 3. the reservation row(s) (`load` with `lock`);
//! 4. budget windows by ascending id (`current_windows`, `locked_windows`:
//!    `FOR NO KEY UPDATE`);
//! 5. the agent row, for velocity (`authorize`);
//! 6. merchants (`record_seen`);
//! 7. the tenant's audit chain ([`crate::audit`]), always last.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sea_orm::sea_query::{Expr, LockType};
use sea_orm::{
    ActiveEnum, ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
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
use crate::store::repo::{Ctx, finish, retry_contention};
use crate::{Error, Result};

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

    async fn reserve_once(&self, request: &ReserveRequest) -> Result<ReserveOutcome> {
        let now = self.ctx.now();
        // A lost race on the idempotency key is retried a few times; anything
        // else is returned at once.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let txn = self.ctx.begin_write().await?;
            match reserve_in(&txn, self.ctx.tenant, request, now).await {
                Ok(outcome) => {
                    if matches!(outcome, ReserveOutcome::Reserved { .. }) {
                        txn.commit().await?;
                    } else {
                        crate::store::repo::discard(txn).await;
                    }
                    return Ok(outcome);
                }
                // A concurrent call with the same idempotency key won the race:
                // return its reservation.
                Err(Error::Conflict { .. })
                    if request.idempotency_key.is_some() && attempts < 5 =>
                {
                    crate::store::repo::discard(txn).await;
                    if let Some(found) = self
                        .find_by_key(request.idempotency_key.as_deref().unwrap_or_default())
                        .await?
                    {
                        check_replay(&found.0, request)?;
                        return Ok(ReserveOutcome::Reserved {
                            reservation: found.0,
                            lines: found.1,
                            replayed: true,
                        });
                    }
                    // The winner rolled back; try again.
                }
                Err(err) => {
                    crate::store::repo::discard(txn).await;
                    return Err(err);
                }
            }
        }
    }

    async fn find_by_key(
        &self,
        key: &str,
    ) -> Result<Option<(reservation::Model, Vec<reservation_line::Model>)>> {
        find_by_key(&self.ctx.db, self.ctx.tenant, key).await
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
        use crate::entity::approval_request::{self, ApprovalStatus};
        let due: Vec<ReservationId> = reservation::Entity::find()
            .filter(reservation::Column::TenantId.eq(self.ctx.tenant))
            .filter(reservation::Column::Status.eq(ReservationStatus::Held))
            .filter(reservation::Column::ExpiresAt.lte(now))
            .order_by_asc(reservation::Column::Id)
            .all(&self.ctx.db)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect();
        let mut expired = 0;
        for id in due {
            let txn = self.ctx.begin_write().await?;
            let result = async {
                // Lock order: an approval request before the reservation it
                // holds. A pending one is expired with its hold.
                let approval = approval_request::Entity::find()
                    .filter(approval_request::Column::TenantId.eq(self.ctx.tenant))
                    .filter(approval_request::Column::ReservationId.eq(id))
                    .filter(approval_request::Column::Status.eq(ApprovalStatus::Pending))
                    .one(&txn)
                    .await?;
                if let Some(approval) = approval {
                    let approvals = crate::store::approvals::Approvals::new(Ctx::new(
                        &txn,
                        self.ctx.tenant,
                        self.ctx.clock,
                    ));
                    // The request expires at its own time; until then its
                    // hold stays (the hold of a pending approval lasts as
                    // long as the approval).
                    return approvals.expire_one(&txn, approval.id, now).await;
                }
                // Another sweeper (or a capture) may have got there first: only
                // a reservation still held and still due is expired.
                let current = load(&txn, self.ctx.tenant, id, true).await?;
                if current.status != ReservationStatus::Held || current.expires_at > now {
                    return Ok(false);
                }
                let ended =
                    end_hold_in(&txn, self.ctx.tenant, id, ReservationStatus::Expired, now).await?;
                let event = crate::events::reservation_expired_event(&ended)?;
                crate::events::emit(&txn, self.ctx.tenant, event, now).await?;
                Ok(true)
            }
            .await;
            if finish(txn, result).await? {
                expired += 1;
            }
        }
        Ok(expired)
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

fn validate_key(key: &str) -> Result<()> {
    if key.trim().is_empty() {
        return Err(Error::invalid("idempotency_key", "must not be empty"));
    }
    if key.chars().count() > MAX_IDEMPOTENCY_KEY_LEN {
        return Err(Error::invalid(
            "idempotency_key",
            format!(
                "is {} characters long; at most {MAX_IDEMPOTENCY_KEY_LEN} are allowed",
                key.chars().count()
            ),
        ));
    }
    Ok(())
}

/// A settled amount: zero or positive, storable. Zero settles a hold with
/// nothing spent.
pub(crate) fn settled_amount(field: &str, money: &Money) -> Result<Amount> {
    if money.amount() < Decimal::ZERO {
        return Err(Error::invalid(
            field,
            format!("must not be negative, got {}", money.amount()),
        ));
    }
    Amount::new(money.amount()).map_err(|e| Error::invalid(field, e))
}

/// Longest refund id, in characters: the width of `refunds.provider_refund_id`
/// and of the ledger's `reference`.
pub const MAX_REFUND_ID_LEN: usize = bursar_migration::widths::REFERENCE as usize;

fn validate_refund_id(refund_id: &str) -> Result<&str> {
    let trimmed = refund_id.trim();
    if trimmed.is_empty() || refund_id.chars().count() > MAX_REFUND_ID_LEN {
        return Err(Error::invalid(
            "refund_id",
            format!(
                "must be 1 to {MAX_REFUND_ID_LEN} characters and not blank, got {}",
                refund_id.chars().count()
            ),
        ));
    }
    Ok(trimmed)
}

/// A positive, storable amount.
pub(crate) fn positive_amount(field: &str, money: &Money) -> Result<Amount> {
    if money.amount() <= Decimal::ZERO {
        return Err(Error::invalid(
            field,
            format!("must be positive, got {}", money.amount()),
        ));
    }
    Amount::new(money.amount()).map_err(|e| Error::invalid(field, e))
}

/// A retried reserve must be the same request: same amount and currency, same
/// agent and run, same purchase intent. The conflict says no more than that,
/// so a key never reveals another request's details.
fn check_replay(found: &reservation::Model, request: &ReserveRequest) -> Result<()> {
    let same = found.amount.get() == request.amount.amount()
        && found.currency == request.amount.currency()
        && found.agent_id == request.principal.map(|p| p.agent_id)
        && found.run_id == request.principal.and_then(|p| p.run_id)
        && found.purchase_intent_id == request.purchase_intent_id;
    if !same {
        return Err(Error::conflict(
            "reservation",
            format!(
                "idempotency key {:?} was first used for a different request",
                found.idempotency_key.as_deref().unwrap_or_default()
            ),
        ));
    }
    Ok(())
}

async fn find_by_key(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    key: &str,
) -> Result<Option<(reservation::Model, Vec<reservation_line::Model>)>> {
    let Some(found) = reservation::Entity::find()
        .filter(reservation::Column::TenantId.eq(tenant))
        .filter(reservation::Column::IdempotencyKey.eq(key))
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    let lines = lines_of(conn, tenant, found.id).await?;
    Ok(Some((found, lines)))
}

async fn lines_of(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    id: ReservationId,
) -> Result<Vec<reservation_line::Model>> {
    Ok(reservation_line::Entity::find()
        .filter(reservation_line::Column::TenantId.eq(tenant))
        .filter(reservation_line::Column::ReservationId.eq(id))
        .order_by_asc(reservation_line::Column::WindowId)
        .all(conn)
        .await?)
}

pub(crate) async fn load(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    id: ReservationId,
    lock: bool,
) -> Result<reservation::Model> {
    let mut query = reservation::Entity::find()
        .filter(reservation::Column::TenantId.eq(tenant))
        .filter(reservation::Column::Id.eq(id));
    if lock {
        query = query.lock_exclusive();
    }
    query
        .one(conn)
        .await?
        .ok_or_else(|| Error::not_found(ReservationId::ENTITY, id))
}

/// The tenant's time zone, for finding windows.
pub(crate) async fn tenant_timezone(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
) -> Result<chrono_tz::Tz> {
    let row = crate::entity::tenant::Entity::find_by_id(tenant)
        .one(conn)
        .await?
        .ok_or_else(|| Error::not_found(TenantId::ENTITY, tenant))?;
    crate::budget::parse_timezone(&row.timezone)
}

/// Active budgets of the tenant whose scope contains `principal`, ordered by
/// id, in every currency: a budget in another currency than the request's
/// cannot evaluate it, and the callers refuse the request (see
/// [`currency_mismatches`]) rather than skip the budget.
pub(crate) async fn applicable_budgets(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    principal: Option<&Principal>,
) -> Result<Vec<budget::Model>> {
    use budget::ScopeKind;
    let mut scopes = Condition::any().add(budget::Column::ScopeKind.eq(ScopeKind::Tenant));
    if let Some(p) = principal {
        let candidates = [
            (ScopeKind::Agent, Some(p.agent_id.0)),
            (ScopeKind::Team, p.team_id.map(|i| i.0)),
            (ScopeKind::Project, p.project_id.map(|i| i.0)),
            (ScopeKind::Run, p.run_id.map(|i| i.0)),
        ];
        for (kind, id) in candidates {
            if let Some(id) = id {
                scopes = scopes.add(
                    Condition::all()
                        .add(budget::Column::ScopeKind.eq(kind))
                        .add(budget::Column::ScopeId.eq(id)),
                );
            }
        }
    }
    Ok(budget::Entity::find()
        .filter(budget::Column::TenantId.eq(tenant))
        .filter(budget::Column::IsActive.eq(true))
        .filter(scopes)
        .order_by_asc(budget::Column::Id)
        .all(conn)
        .await?)
}

/// The applicable budgets kept in another currency than `currency`, as
/// shortfalls with the code [`BUDGET_CURRENCY_MISMATCH`](crate::codes::BUDGET_CURRENCY_MISMATCH)
/// (nothing can be said of what remains, so `remaining` is zero).
pub(crate) fn currency_mismatches(budgets: &[budget::Model], currency: Currency) -> Vec<Shortfall> {
    budgets
        .iter()
        .filter(|b| b.currency != currency)
        .map(|b| Shortfall {
            budget_id: b.id,
            code: crate::codes::BUDGET_CURRENCY_MISMATCH,
            period: b.period,
            limit: b.limit_amount.get(),
            remaining: Decimal::ZERO,
        })
        .collect()
}

/// The budget's scope as the pure [`Scope`].
pub(crate) fn scope_of(b: &budget::Model) -> Scope {
    use budget::ScopeKind;
    match (b.scope_kind, b.scope_id) {
        (ScopeKind::Agent, Some(id)) => Scope::Agent(id.into()),
        (ScopeKind::Team, Some(id)) => Scope::Team(id.into()),
        (ScopeKind::Project, Some(id)) => Scope::Project(id.into()),
        (ScopeKind::Run, Some(id)) => Scope::Run(id.into()),
        _ => Scope::Tenant,
    }
}

/// Finds (creating when absent) the current window of each budget, then locks
/// them in ascending id order. Returns `(budget, window)` pairs in lock order.
pub(crate) async fn current_windows(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    budgets: Vec<budget::Model>,
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
    lock: bool,
) -> Result<Vec<(budget::Model, budget_window::Model)>> {
    if budgets.is_empty() {
        return Ok(Vec::new());
    }
    let periods: Vec<_> = budgets.iter().map(|b| b.period.window(now, tz)).collect();
    let mut condition = Condition::any();
    for (b, window) in budgets.iter().zip(&periods) {
        condition = condition.add(
            Condition::all()
                .add(budget_window::Column::BudgetId.eq(b.id))
                .add(budget_window::Column::PeriodStart.eq(window.start)),
        );
    }
    let read = |condition: Condition| {
        let mut query = budget_window::Entity::find()
            .filter(budget_window::Column::TenantId.eq(tenant))
            .filter(condition)
            .order_by_asc(budget_window::Column::Id);
        if lock {
            query = query.lock(LockType::NoKeyUpdate);
        }
        query
    };
    // Most calls find every window already there: one read, locked in
    // ascending id order.
    let mut windows = read(condition.clone()).all(conn).await?;
    if windows.len() < budgets.len() {
        // Insert-if-absent the missing ones, in budget id order (concurrent
        // creators of the same window wait on the unique key and then do
        // nothing), then read them all again in ascending id order.
        for (b, window) in budgets.iter().zip(&periods) {
            if windows.iter().any(|w| w.budget_id == b.id) {
                continue;
            }
            let row = budget_window::ActiveModel {
                id: Set(BudgetWindowId::new()),
                tenant_id: Set(tenant),
                budget_id: Set(b.id),
                period_start: Set(window.start),
                period_end: Set(window.end),
                limit_amount: Set(b.limit_amount),
                spent: Set(Amount::ZERO),
                reserved: Set(Amount::ZERO),
                created_at: Set(now),
                updated_at: Set(now),
            };
            budget_window::Entity::insert(row)
                .on_conflict_do_nothing_on([
                    budget_window::Column::TenantId,
                    budget_window::Column::BudgetId,
                    budget_window::Column::PeriodStart,
                ])
                .exec_without_returning(conn)
                .await?;
        }
        windows = read(condition).all(conn).await?;
    }
    let mut pairs = Vec::with_capacity(windows.len());
    for w in windows {
        if let Some(b) = budgets.iter().find(|b| b.id == w.budget_id) {
            pairs.push((b.clone(), w));
        }
    }
    Ok(pairs)
}

/// The pure view of a stored window.
pub(crate) fn balance_of(b: &budget::Model, w: &budget_window::Model) -> WindowBalance {
    WindowBalance {
        budget_id: b.id,
        scope: scope_of(b),
        period: b.period,
        currency: b.currency,
        limit: w.limit_amount.get(),
        spent: w.spent.get(),
        reserved: w.reserved.get(),
    }
}

/// Sets a window's balance, guarded by the balance read under the lock:
/// `UPDATE … SET spent = ?, reserved = ? WHERE id = ? AND spent = ? AND
/// reserved = ? AND limit_amount >= ?` (the new total, when it must fit). The
/// guard makes the write a compare-and-set: if anything moved the window since
/// it was read, nothing is written and the call fails instead of overspending.
async fn write_window(
    conn: &impl ConnectionTrait,
    w: &budget_window::Model,
    spent: Amount,
    reserved: Amount,
    must_fit: bool,
    now: DateTime<Utc>,
) -> Result<()> {
    let mut update = budget_window::Entity::update_many()
        .col_expr(budget_window::Column::Spent, Expr::value(spent))
        .col_expr(budget_window::Column::Reserved, Expr::value(reserved))
        .col_expr(budget_window::Column::UpdatedAt, Expr::value(now))
        .filter(budget_window::Column::TenantId.eq(w.tenant_id))
        .filter(budget_window::Column::Id.eq(w.id))
        .filter(budget_window::Column::Spent.eq(w.spent))
        .filter(budget_window::Column::Reserved.eq(w.reserved));
    if must_fit {
        let total = spent
            .checked_add(reserved)
            .map_err(|e| Error::invalid("amount", e))?;
        update = update.filter(budget_window::Column::LimitAmount.gte(total));
    }
    let result = update.exec(conn).await?;
    if result.rows_affected != 1 {
        return Err(Error::conflict(
            "budget_window",
            format!(
                "window {} changed while it was being updated; nothing was written",
                w.id
            ),
        ));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn ledger_row(
    tenant: TenantId,
    w: &budget_window::Model,
    reservation: ReservationId,
    currency: Currency,
    entry_type: EntryType,
    bucket: Bucket,
    direction: Direction,
    amount: Amount,
    reference: Option<String>,
    now: DateTime<Utc>,
) -> ledger_entry::ActiveModel {
    ledger_entry::ActiveModel {
        id: Set(LedgerEntryId::new()),
        tenant_id: Set(tenant),
        budget_id: Set(w.budget_id),
        window_id: Set(w.id),
        reservation_id: Set(Some(reservation)),
        entry_type: Set(entry_type),
        bucket: Set(bucket),
        direction: Set(direction),
        amount: Set(amount),
        currency: Set(currency),
        reference: Set(reference),
        occurred_at: Set(now),
        created_at: Set(now),
        ..Default::default()
    }
}

async fn append_ledger(
    conn: &impl ConnectionTrait,
    rows: Vec<ledger_entry::ActiveModel>,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    ledger_entry::Entity::insert_many(rows)
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Reserves inside the caller's transaction (which must be a write
/// transaction: `BEGIN IMMEDIATE` on SQLite).
///
/// 1. With an idempotency key, an existing reservation for it is returned
///    (`replayed: true`) and nothing moves.
/// 2. The reservation row is inserted first, so a concurrent call with the
///    same key waits on the unique key and then fails with
///    [`Error::Conflict`] (the caller then returns the winner's reservation).
/// 3. The current window of every applicable budget is created if absent, and
///    all of them are locked in ascending id order (`SELECT … FOR UPDATE` on
///    PostgreSQL; SQLite's write lock is already held).
/// 4. If `spent + reserved + amount > limit` for any window, the outcome is
///    [`ReserveOutcome::Rejected`] naming every such budget; the caller rolls
///    back, so nothing was written.
/// 5. Otherwise each window's `reserved` grows by the amount through a guarded
///    update, and one line and one ledger entry per window are written.
///
/// # Errors
/// See [`ReservationRepository::reserve`].
pub async fn reserve_in(
    txn: &impl ConnectionTrait,
    tenant: TenantId,
    request: &ReserveRequest,
    now: DateTime<Utc>,
) -> Result<ReserveOutcome> {
    reserve_with(txn, tenant, request, now, None).await
}

/// [`reserve_in`], given the tenant's time zone and the applicable budgets
/// when the caller has loaded them already (`authorize` does, for its facts),
/// so they are not read twice in one transaction.
pub(crate) async fn reserve_with(
    txn: &impl ConnectionTrait,
    tenant: TenantId,
    request: &ReserveRequest,
    now: DateTime<Utc>,
    known: Option<Vec<(budget::Model, budget_window::Model)>>,
) -> Result<ReserveOutcome> {
    let amount = positive_amount("amount", &request.amount)?;
    if request.expires_at <= now {
        return Err(Error::invalid(
            "expires_at",
            format!("{} is not after now ({now})", request.expires_at),
        ));
    }
    if let Some(key) = &request.idempotency_key {
        validate_key(key)?;
        if let Some((found, lines)) = find_by_key(txn, tenant, key).await? {
            check_replay(&found, request)?;
            return Ok(ReserveOutcome::Reserved {
                reservation: found,
                lines,
                replayed: true,
            });
        }
    }
    let currency = request.amount.currency();
    let inside_authorize = known.is_some();
    // Inside authorize, the windows were read and locked (in the lock order)
    // by this transaction, and a budget in another currency refused the
    // request already; they are not read again.
    let to_read = match known {
        Some(windows) => Ok(windows),
        None => {
            let budgets = applicable_budgets(txn, tenant, request.principal.as_ref()).await?;
            // A budget in another currency cannot evaluate the amount:
            // refused, never skipped.
            let mismatched = currency_mismatches(&budgets, currency);
            if !mismatched.is_empty() {
                return Ok(ReserveOutcome::Rejected {
                    shortfalls: mismatched,
                });
            }
            Err((tenant_timezone(txn, tenant).await?, budgets))
        }
    };
    let run_id = request.principal.and_then(|p| p.run_id);
    // Inside authorize the run was locked and checked already.
    if let (Some(run), false) = (run_id, inside_authorize) {
        // A run of another tenant is reported exactly like a missing one.
        let found = crate::entity::agent_run::Entity::find()
            .filter(crate::entity::agent_run::Column::TenantId.eq(tenant))
            .filter(crate::entity::agent_run::Column::Id.eq(run))
            .one(txn)
            .await?;
        if found.is_none() {
            return Err(Error::not_found(crate::id::RunId::ENTITY, run));
        }
    }
    let reservation_id = ReservationId::new();
    let row = reservation::ActiveModel {
        id: Set(reservation_id),
        tenant_id: Set(tenant),
        agent_id: Set(request.principal.map(|p| p.agent_id)),
        run_id: Set(run_id),
        purchase_intent_id: Set(request.purchase_intent_id),
        idempotency_key: Set(request.idempotency_key.clone()),
        currency: Set(currency),
        amount: Set(amount),
        captured_amount: Set(Amount::ZERO),
        refunded_amount: Set(Amount::ZERO),
        status: Set(ReservationStatus::Held),
        expires_at: Set(request.expires_at),
        captured_at: Set(None),
        released_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    };
    let reservation = row.insert(txn).await.map_err(|e| match Error::from(e) {
        // The agent is a composite foreign key (tenant, agent): another
        // tenant's agent fails it exactly like a missing one.
        Error::Invalid { ref field, .. } if field == "reference" => match request.principal {
            Some(p) => Error::not_found(AgentId::ENTITY, p.agent_id),
            None => Error::invalid("reference", "the reservation refers to a missing row"),
        },
        Error::Conflict { .. } => Error::conflict(
            "reservation",
            format!(
                "idempotency key {:?} is taken by a concurrent call",
                request.idempotency_key.as_deref().unwrap_or_default()
            ),
        ),
        other => other,
    })?;

    let windows = match to_read {
        Ok(windows) => windows,
        Err((tz, budgets)) => current_windows(txn, tenant, budgets, tz, now, true).await?,
    };

    let balances: Vec<WindowBalance> = windows.iter().map(|(b, w)| balance_of(b, w)).collect();
    if let crate::budget::Fit::Exceeds(shortfalls) = check_fit(&balances, amount.get())? {
        // Give the idempotency key back: a rejection holds nothing and
        // records nothing, whoever commits this transaction.
        reservation::Entity::delete_many()
            .filter(reservation::Column::TenantId.eq(tenant))
            .filter(reservation::Column::Id.eq(reservation_id))
            .exec(txn)
            .await?;
        return Ok(ReserveOutcome::Rejected { shortfalls });
    }

    let mut lines = Vec::with_capacity(windows.len());
    let mut entries = Vec::with_capacity(windows.len());
    for (_, w) in &windows {
        let reserved = w
            .reserved
            .checked_add(amount)
            .map_err(|e| Error::invalid("amount", e))?;
        write_window(txn, w, w.spent, reserved, true, now).await?;
        lines.push(reservation_line::Model {
            id: ReservationLineId::new(),
            tenant_id: tenant,
            reservation_id,
            budget_id: w.budget_id,
            window_id: w.id,
            amount,
            captured_amount: Amount::ZERO,
            refunded_amount: Amount::ZERO,
            created_at: now,
        });
        entries.push(ledger_row(
            tenant,
            w,
            reservation_id,
            currency,
            EntryType::Reserve,
            Bucket::Reserved,
            Direction::Debit,
            amount,
            None,
            now,
        ));
    }
    if !lines.is_empty() {
        // The lines are known: insert them and return them, no read-back.
        reservation_line::Entity::insert_many(
            lines
                .iter()
                .map(|l| reservation_line::ActiveModel::from(l.clone()).reset_all()),
        )
        .exec_without_returning(txn)
        .await?;
    }
    append_ledger(txn, entries).await?;
    if !inside_authorize {
        // A direct reservation announces the thresholds its hold crossed
        // (inside authorize, the flow announces them with its outcome).
        let crossings = crate::events::threshold_events(&windows, amount.get())?;
        crate::events::emit_all(txn, tenant, crossings, now).await?;
    }
    Ok(ReserveOutcome::Reserved {
        reservation,
        lines,
        replayed: false,
    })
}

/// The windows a reservation's lines point at, locked in ascending id order.
async fn locked_windows(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    lines: &[reservation_line::Model],
) -> Result<Vec<budget_window::Model>> {
    if lines.is_empty() {
        return Ok(Vec::new());
    }
    Ok(budget_window::Entity::find()
        .filter(budget_window::Column::TenantId.eq(tenant))
        .filter(budget_window::Column::Id.is_in(lines.iter().map(|l| l.window_id)))
        .order_by_asc(budget_window::Column::Id)
        .lock(LockType::NoKeyUpdate)
        .all(conn)
        .await?)
}

fn same_currency(reservation: &reservation::Model, money: &Money) -> Result<()> {
    if reservation.currency != money.currency() {
        return Err(Error::invalid(
            "currency",
            format!(
                "{} does not match the reservation's currency {}",
                money.currency(),
                reservation.currency
            ),
        ));
    }
    Ok(())
}

/// The purchase intent `id` names, if any (the one lookup every settlement
/// path uses to ask whether a hold may be spent).
pub(crate) async fn intent_of(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    id: Option<PurchaseIntentId>,
) -> Result<Option<crate::entity::purchase_intent::Model>> {
    use crate::entity::purchase_intent;
    let Some(id) = id else { return Ok(None) };
    Ok(purchase_intent::Entity::find()
        .filter(purchase_intent::Column::TenantId.eq(tenant))
        .filter(purchase_intent::Column::Id.eq(id))
        .one(conn)
        .await?)
}

/// Refuses to spend a hold whose purchase intent is not approved: a hold
/// waiting for a human (or one a human rejected) is not the agent's to spend.
async fn ensure_spendable(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    reservation: &reservation::Model,
) -> Result<()> {
    use crate::entity::purchase_intent::PurchaseIntentStatus;
    let Some(intent_id) = reservation.purchase_intent_id else {
        return Ok(());
    };
    match intent_of(conn, tenant, Some(intent_id)).await? {
        Some(i) if i.status != PurchaseIntentStatus::Approved => Err(Error::conflict(
            "reservation",
            format!(
                "reservation {} belongs to purchase intent {intent_id}, which is {}; only an approved intent's hold can be captured",
                reservation.id,
                i.status.to_value()
            ),
        )),
        _ => Ok(()),
    }
}

/// Captures inside the caller's write transaction. See [`ReservationRepository::capture`].
///
/// # Errors
/// See [`ReservationRepository::capture`].
pub async fn capture_in(
    txn: &impl ConnectionTrait,
    tenant: TenantId,
    id: ReservationId,
    amount: Money,
    now: DateTime<Utc>,
) -> Result<reservation::Model> {
    let captured = settled_amount("amount", &amount)?;
    let current = load(txn, tenant, id, true).await?;
    same_currency(&current, &amount)?;
    ensure_spendable(txn, tenant, &current).await?;
    if current.status == ReservationStatus::Captured {
        if current.captured_amount == captured {
            return Ok(current);
        }
        return Err(Error::conflict(
            "reservation",
            format!(
                "reservation {id} was already captured for {}, not {}; a further charge is recorded through payments().record_transaction with its own charge id",
                current.captured_amount, captured
            ),
        ));
    }
    Ok(post_charge_in(txn, tenant, current, captured, now)
        .await?
        .reservation)
}

/// What [`post_charge_in`] did.
pub(crate) struct Posted {
    /// The reservation, now `captured`.
    pub(crate) reservation: reservation::Model,
    /// Per budget, what was posted as overspend (empty when all of it fit).
    pub(crate) overspend: Vec<(BudgetId, Amount)>,
}

/// Posts a settled charge of `amount` against a reservation the caller has
/// locked (forced capture). A settlement is a fact, so it is always posted,
/// whatever the reservation's state:
///
/// - on every window the reservation's lines point at (the windows of the
///   period it was authorized in), `spent` grows by the whole amount;
/// - while the reservation is `held`, its hold is released in the same step,
///   and the part of the charge up to what the line held is covered by it;
/// - the rest must fit the room the window has left; what does not is posted
///   as `overspend` (the window may then be over its limit, and refuses new
///   reservations until it has room again);
/// - the reservation becomes `captured` and its `captured_amount` grows by
///   the amount (split charges add up). An overspend is audited at level
///   warning.
pub(crate) async fn post_charge_in(
    txn: &impl ConnectionTrait,
    tenant: TenantId,
    current: reservation::Model,
    amount: Amount,
    now: DateTime<Utc>,
) -> Result<Posted> {
    use crate::audit::{AuditEntry, append};
    use crate::entity::audit_log::{AuditLevel, AuditStatus};
    let id = current.id;
    let holding = current.status == ReservationStatus::Held;
    let lines = lines_of(txn, tenant, id).await?;
    let windows = locked_windows(txn, tenant, &lines).await?;
    let add = |a: Amount, b: Amount| a.checked_add(b).map_err(|e| Error::invalid("amount", e));
    let mut entries = Vec::new();
    let mut overspend = Vec::new();
    // Windows whose spent + reserved grows (the charge is more than what the
    // line held there): they may cross an alert threshold.
    let mut growing = Vec::new();
    for w in &windows {
        let held_here = match lines.iter().find(|l| l.window_id == w.id) {
            Some(l) if holding => l.amount,
            _ => Amount::ZERO,
        };
        if amount > held_here {
            growing.push((w.clone(), amount.get() - held_here.get()));
        }
        let reserved = w.reserved.saturating_sub(held_here);
        let covered = if amount < held_here {
            amount
        } else {
            held_here
        };
        let beyond = amount.saturating_sub(covered);
        let spent_covered = add(w.spent, covered)?;
        let room = w
            .limit_amount
            .saturating_sub(spent_covered)
            .saturating_sub(reserved);
        let fits = if beyond < room { beyond } else { room };
        let excess = beyond.saturating_sub(fits);
        let spent = add(w.spent, amount)?;
        write_window(txn, w, spent, reserved, false, now).await?;
        let row = |entry_type, bucket, direction, value| {
            ledger_row(
                tenant,
                w,
                id,
                current.currency,
                entry_type,
                bucket,
                direction,
                value,
                None,
                now,
            )
        };
        if !held_here.is_zero() {
            entries.push(row(
                EntryType::Capture,
                Bucket::Reserved,
                Direction::Credit,
                held_here,
            ));
        }
        let captured_here = add(covered, fits)?;
        if !captured_here.is_zero() {
            entries.push(row(
                EntryType::Capture,
                Bucket::Spent,
                Direction::Debit,
                captured_here,
            ));
        }
        if !excess.is_zero() {
            entries.push(row(
                EntryType::Overspend,
                Bucket::Spent,
                Direction::Debit,
                excess,
            ));
            overspend.push((w.budget_id, excess));
        }
    }
    append_ledger(txn, entries).await?;
    let captured_total = add(current.captured_amount, amount)?;
    // Every line of a reservation captures the same amounts, so one statement
    // moves them all (guarded on the value read).
    if let Some(first) = lines.first() {
        let line_captured = add(first.captured_amount, amount)?;
        let moved = reservation_line::Entity::update_many()
            .col_expr(
                reservation_line::Column::CapturedAmount,
                Expr::value(line_captured),
            )
            .filter(reservation_line::Column::TenantId.eq(tenant))
            .filter(reservation_line::Column::ReservationId.eq(id))
            .filter(reservation_line::Column::CapturedAmount.eq(first.captured_amount))
            .exec(txn)
            .await?;
        if moved.rows_affected != lines.len() as u64 {
            return Err(Error::conflict(
                "reservation_line",
                format!("the lines of reservation {id} changed while being captured"),
            ));
        }
    }
    let currency = current.currency;
    let mut row: reservation::ActiveModel = current.into();
    row.status = Set(ReservationStatus::Captured);
    row.captured_amount = Set(captured_total);
    row.captured_at = Set(Some(now));
    row.updated_at = Set(now);
    let reservation = row.update(txn).await?;
    if !growing.is_empty() {
        let budgets = budget::Entity::find()
            .filter(budget::Column::TenantId.eq(tenant))
            .filter(budget::Column::Id.is_in(growing.iter().map(|(w, _)| w.budget_id)))
            .all(txn)
            .await?;
        let moves: Vec<_> = growing
            .iter()
            .filter_map(|(w, delta)| {
                budgets
                    .iter()
                    .find(|b| b.id == w.budget_id)
                    .map(|b| (b, w, *delta))
            })
            .collect();
        let crossings = crate::events::threshold_crossings(&moves)?;
        crate::events::emit_all(txn, tenant, crossings, now).await?;
    }
    if !overspend.is_empty() {
        let event = crate::events::overspent_event(id, amount.get(), currency, &overspend)?;
        crate::events::emit(txn, tenant, event, now).await?;
        let summary = overspend
            .iter()
            .map(|(budget, excess)| format!("{excess} {currency} over budget {budget}"))
            .collect::<Vec<_>>()
            .join(", ");
        append(
            txn,
            tenant,
            AuditEntry::new("reservation.overspend", "reservation")
                .resource_id(id)
                .level(AuditLevel::Warn)
                .status(AuditStatus::Error)
                .message(format!(
                    "a settled charge of {amount} {currency} did not fit: {summary}"
                )),
            now,
        )
        .await?;
    }
    Ok(Posted {
        reservation,
        overspend,
    })
}

/// Releases or expires a held reservation inside the caller's write
/// transaction: the whole hold returns to every window.
///
/// # Errors
/// See [`ReservationRepository::release`].
pub async fn end_hold_in(
    txn: &impl ConnectionTrait,
    tenant: TenantId,
    id: ReservationId,
    to: ReservationStatus,
    now: DateTime<Utc>,
) -> Result<reservation::Model> {
    let current = load(txn, tenant, id, true).await?;
    if current.status == to {
        return Ok(current);
    }
    if current.status != ReservationStatus::Held {
        return Err(Error::conflict(
            "reservation",
            format!(
                "reservation {id} is {}; only a held reservation can be {}",
                current.status.to_value(),
                to.to_value()
            ),
        ));
    }
    let entry_type = if to == ReservationStatus::Expired {
        EntryType::Expire
    } else {
        EntryType::Release
    };
    let lines = lines_of(txn, tenant, id).await?;
    let windows = locked_windows(txn, tenant, &lines).await?;
    let mut entries = Vec::new();
    for w in &windows {
        let line_held = lines
            .iter()
            .find(|l| l.window_id == w.id)
            .map_or(current.amount, |l| l.amount);
        let reserved = w.reserved.saturating_sub(line_held);
        write_window(txn, w, w.spent, reserved, false, now).await?;
        entries.push(ledger_row(
            tenant,
            w,
            id,
            current.currency,
            entry_type,
            Bucket::Reserved,
            Direction::Credit,
            line_held,
            None,
            now,
        ));
    }
    append_ledger(txn, entries).await?;
    let mut row: reservation::ActiveModel = current.into();
    row.status = Set(to);
    row.released_at = Set(Some(now));
    row.updated_at = Set(now);
    Ok(row.update(txn).await?)
}

/// Refunds inside the caller's write transaction. See [`ReservationRepository::refund`].
///
/// `transaction` links the refund to the provider charge it came from.
///
/// # Errors
/// See [`ReservationRepository::refund`].
pub(crate) async fn refund_in(
    txn: &impl ConnectionTrait,
    tenant: TenantId,
    id: ReservationId,
    amount: Money,
    refund_id: &str,
    transaction: Option<crate::id::TransactionId>,
    now: DateTime<Utc>,
) -> Result<reservation::Model> {
    use crate::entity::refund;
    let refund = positive_amount("amount", &amount)?;
    let refund_id = validate_refund_id(refund_id)?;
    // Lock order: the reservation row first, then its windows.
    let current = load(txn, tenant, id, true).await?;
    same_currency(&current, &amount)?;
    let already = refund::Entity::find()
        .filter(refund::Column::TenantId.eq(tenant))
        .filter(refund::Column::ProviderRefundId.eq(refund_id))
        .one(txn)
        .await?;
    if let Some(found) = already {
        if found.amount == refund && found.reservation_id == Some(id) {
            return Ok(current);
        }
        return Err(Error::conflict(
            "refund",
            format!("refund id {refund_id:?} was already used for another refund"),
        ));
    }
    if current.status != ReservationStatus::Captured {
        return Err(Error::conflict(
            "reservation",
            format!(
                "reservation {id} is {}; only a captured reservation can be refunded",
                current.status.to_value()
            ),
        ));
    }
    let refundable = current
        .captured_amount
        .saturating_sub(current.refunded_amount);
    if refund > refundable {
        return Err(Error::invalid(
            "amount",
            format!("refund of {refund} is more than the {refundable} left to refund"),
        ));
    }
    let lines = lines_of(txn, tenant, id).await?;
    let windows = locked_windows(txn, tenant, &lines).await?;
    let mut entries = Vec::new();
    for w in &windows {
        // Never below zero: take back at most what the window has spent.
        let taken = if refund > w.spent { w.spent } else { refund };
        if taken.is_zero() {
            continue;
        }
        write_window(
            txn,
            w,
            w.spent.saturating_sub(taken),
            w.reserved,
            false,
            now,
        )
        .await?;
        entries.push(ledger_row(
            tenant,
            w,
            id,
            current.currency,
            EntryType::Refund,
            Bucket::Spent,
            Direction::Credit,
            taken,
            Some(refund_id.to_owned()),
            now,
        ));
    }
    append_ledger(txn, entries).await?;
    refund::ActiveModel {
        id: Set(crate::id::RefundId::new()),
        tenant_id: Set(tenant),
        reservation_id: Set(Some(id)),
        transaction_id: Set(transaction),
        provider_refund_id: Set(refund_id.to_owned()),
        amount: Set(refund),
        currency: Set(current.currency),
        created_at: Set(now),
    }
    .insert(txn)
    .await
    .map_err(|e| match Error::from(e) {
        // The same refund id on another reservation, committed meanwhile.
        Error::Conflict { .. } => Error::conflict(
            "refund",
            format!("refund id {refund_id:?} was already used for another refund"),
        ),
        other => other,
    })?;
    let refunded = current
        .refunded_amount
        .checked_add(refund)
        .map_err(|e| Error::invalid("amount", e))?;
    reservation_line::Entity::update_many()
        .col_expr(
            reservation_line::Column::RefundedAmount,
            Expr::value(refunded),
        )
        .filter(reservation_line::Column::TenantId.eq(tenant))
        .filter(reservation_line::Column::ReservationId.eq(id))
        .exec(txn)
        .await?;
    let mut row: reservation::ActiveModel = current.into();
    row.refunded_amount = Set(refunded);
    row.updated_at = Set(now);
    Ok(row.update(txn).await?)
}

/// Compares every window of the tenant with the sums of its ledger entries.
///
/// # Errors
/// [`Error::Database`].
pub async fn reconcile_in(conn: &impl ConnectionTrait, tenant: TenantId) -> Result<Reconciliation> {
    use std::collections::HashMap;
    let windows = budget_window::Entity::find()
        .filter(budget_window::Column::TenantId.eq(tenant))
        .order_by_asc(budget_window::Column::Id)
        .all(conn)
        .await?;
    let entries = ledger_entry::Entity::find()
        .filter(ledger_entry::Column::TenantId.eq(tenant))
        .all(conn)
        .await?;
    // Per window: spent, reserved, and what was posted as overspend.
    let mut sums: HashMap<BudgetWindowId, (Decimal, Decimal, Decimal)> = HashMap::new();
    for e in &entries {
        let signed = match e.direction {
            Direction::Debit => e.amount.get(),
            Direction::Credit => -e.amount.get(),
        };
        let sum = sums.entry(e.window_id).or_default();
        match e.bucket {
            Bucket::Spent => sum.0 += signed,
            Bucket::Reserved => sum.1 += signed,
        }
        if e.entry_type == EntryType::Overspend {
            sum.2 += signed;
        }
    }
    let mut report = Reconciliation {
        windows: windows.len(),
        entries: entries.len(),
        discrepancies: Vec::new(),
        overspent: Vec::new(),
    };
    for w in windows {
        let (ledger_spent, ledger_reserved, overspent) =
            sums.get(&w.id).copied().unwrap_or_default();
        let over_limit = w.spent.get() + w.reserved.get() > w.limit_amount.get() + overspent;
        if !overspent.is_zero() {
            report.overspent.push((w.id, overspent));
        }
        if ledger_spent != w.spent.get() || ledger_reserved != w.reserved.get() || over_limit {
            report.discrepancies.push(Discrepancy {
                window_id: w.id,
                budget_id: w.budget_id,
                stored_spent: w.spent.get(),
                ledger_spent,
                stored_reserved: w.reserved.get(),
                ledger_reserved,
                overspent,
                over_limit,
            });
        }
    }
    Ok(report)
}
