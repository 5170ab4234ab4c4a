//! Reservations: atomic, all-or-nothing holds on every budget window that
//! applies to a request, and their capture, release, expiry and refund.
//!
//! Every function here takes the connection or transaction to run on, so that
//! [`authorize`](crate::store::TenantScope::authorize) can reserve inside its own
//! transaction and a host can call [`Reservations`] on its own. See
//! `docs/budgets.md` for the protocol and the ledger.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sea_orm::sea_query::Expr;
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
use crate::store::repo::{Ctx, finish, list_page};
use crate::store::{Page, PageRequest};
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
    /// Hold `amount` until `expires_at` (after which [`Reservations::expire_due`]
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

/// What [`Reservations::reserve`] did.
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
    /// Whether `spent + reserved > limit`.
    pub over_limit: bool,
}

/// The result of [`Reservations::reconcile`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Reconciliation {
    /// Windows checked.
    pub windows: usize,
    /// Ledger entries summed.
    pub entries: usize,
    /// Windows whose balance does not match the ledger or exceeds the limit.
    pub discrepancies: Vec<Discrepancy>,
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

    /// Holds the request's amount on every applicable budget window, all or
    /// nothing, in one transaction. See [`reserve_in`] for the protocol.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a zero, negative or unstorable amount, an
    /// expiry not after now, or a bad idempotency key; [`Error::NotFound`] when
    /// the principal's agent is not this tenant's (a team, project or run of
    /// another tenant simply matches none of this tenant's budgets);
    /// [`Error::Conflict`] when the idempotency key was used for a
    /// different amount; [`Error::Database`].
    pub async fn reserve(&self, request: ReserveRequest) -> Result<ReserveOutcome> {
        let now = self.ctx.now();
        // A lost race on the idempotency key is retried a few times; anything
        // else is returned at once.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let txn = self.ctx.begin_write().await?;
            match reserve_in(&txn, self.ctx.tenant, &request, now).await {
                Ok(outcome) => {
                    if matches!(outcome, ReserveOutcome::Reserved { .. }) {
                        txn.commit().await?;
                    } else {
                        txn.rollback().await?;
                    }
                    return Ok(outcome);
                }
                // A concurrent call with the same idempotency key won the race:
                // return its reservation.
                Err(Error::Conflict { .. })
                    if request.idempotency_key.is_some() && attempts < 5 =>
                {
                    txn.rollback().await?;
                    if let Some(found) = self
                        .find_by_key(request.idempotency_key.as_deref().unwrap_or_default())
                        .await?
                    {
                        check_replay(&found.0, &request)?;
                        return Ok(ReserveOutcome::Reserved {
                            reservation: found.0,
                            lines: found.1,
                            replayed: true,
                        });
                    }
                    // The winner rolled back; try again.
                }
                Err(err) => {
                    txn.rollback().await?;
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

    /// One reservation with its lines.
    ///
    /// # Errors
    /// [`Error::NotFound`] when it does not exist in this tenant.
    pub async fn get(
        &self,
        id: ReservationId,
    ) -> Result<(reservation::Model, Vec<reservation_line::Model>)> {
        let conn = &self.ctx.db;
        let found = load(conn, self.ctx.tenant, id, false).await?;
        let lines = lines_of(conn, self.ctx.tenant, id).await?;
        Ok((found, lines))
    }

    /// Reservations, oldest first, filtered by status (`held`, `captured`,
    /// `released`, `expired`) and creation time.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad page or status; [`Error::Database`].
    pub async fn list(&self, page: PageRequest) -> Result<Page<reservation::Model>> {
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

    /// Captures `amount` of a held reservation: that amount becomes spent on
    /// every window and the rest of the hold is released.
    ///
    /// Capturing more than was held is allowed only when the difference still
    /// fits every window the reservation holds (otherwise [`Error::Conflict`]
    /// naming the budget). Capturing an already captured reservation again with
    /// the same amount succeeds and changes nothing; with a different amount it
    /// is a [`Error::Conflict`].
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Conflict`] (wrong state, or over-capture that
    /// does not fit), [`Error::Invalid`] (a zero, negative or unstorable amount —
    /// nothing spent is a [release](Reservations::release) —, or a currency
    /// other than the reservation's), [`Error::Database`].
    pub async fn capture(&self, id: ReservationId, amount: Money) -> Result<reservation::Model> {
        let now = self.ctx.now();
        let txn = self.ctx.begin_write().await?;
        let result = capture_in(&txn, self.ctx.tenant, id, amount, now).await;
        finish(txn, result).await
    }

    /// Releases a held reservation: the whole hold returns to the budgets.
    /// Releasing an already released reservation changes nothing.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Conflict`] when it was captured or expired,
    /// [`Error::Database`].
    pub async fn release(&self, id: ReservationId) -> Result<reservation::Model> {
        let now = self.ctx.now();
        let txn = self.ctx.begin_write().await?;
        let result = end_hold_in(&txn, self.ctx.tenant, id, ReservationStatus::Released, now).await;
        finish(txn, result).await
    }

    /// Expires every held reservation of this tenant whose expiry is at or
    /// before `now`, returning its hold to the budgets. Returns how many were
    /// expired. Safe to run from several processes at once.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn expire_due(&self, now: DateTime<Utc>) -> Result<u64> {
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
            // Another sweeper (or a capture) may have got there first: only a
            // reservation still held and still due is expired.
            let current = load(&txn, self.ctx.tenant, id, true).await?;
            if current.status != ReservationStatus::Held || current.expires_at > now {
                txn.rollback().await?;
                continue;
            }
            end_hold_in(&txn, self.ctx.tenant, id, ReservationStatus::Expired, now).await?;
            txn.commit().await?;
            expired += 1;
        }
        Ok(expired)
    }

    /// Refunds `amount` of a captured reservation: spent goes down on the windows
    /// it was captured in (even past ones), never below zero. `refund_id` makes
    /// the call repeatable: a second call with the same id changes nothing.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Conflict`] when the reservation is not
    /// captured, [`Error::Invalid`] for a zero, negative or unstorable amount, a
    /// refund larger than what is left to refund, an empty refund id, or another
    /// currency; [`Error::Database`].
    pub async fn refund(
        &self,
        id: ReservationId,
        amount: Money,
        refund_id: &str,
    ) -> Result<reservation::Model> {
        let now = self.ctx.now();
        let txn = self.ctx.begin_write().await?;
        let result = refund_in(&txn, self.ctx.tenant, id, amount, refund_id, now).await;
        finish(txn, result).await
    }

    /// Recomputes every window's spent and reserved from the ledger and reports
    /// each window where they differ from the stored balance, or where
    /// `spent + reserved > limit`.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn reconcile(&self) -> Result<Reconciliation> {
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

fn check_replay(found: &reservation::Model, request: &ReserveRequest) -> Result<()> {
    if found.amount.get() != request.amount.amount() || found.currency != request.amount.currency()
    {
        return Err(Error::conflict(
            "reservation",
            format!(
                "idempotency key {:?} was first used for {} {}, not {}",
                found.idempotency_key.as_deref().unwrap_or_default(),
                found.amount,
                found.currency,
                request.amount
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

async fn load(
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

/// Active budgets of the tenant in `currency` whose scope contains `principal`,
/// ordered by id.
pub(crate) async fn applicable_budgets(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    principal: Option<&Principal>,
    currency: Currency,
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
        .filter(budget::Column::Currency.eq(currency))
        .filter(scopes)
        .order_by_asc(budget::Column::Id)
        .all(conn)
        .await?)
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
    // Insert-if-absent, in budget id order: concurrent creators of the same
    // window wait on the unique key and then do nothing.
    let mut starts = Vec::with_capacity(budgets.len());
    for b in &budgets {
        let window = b.period.window(now, tz);
        starts.push(window.start);
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
    let mut condition = Condition::any();
    for (b, start) in budgets.iter().zip(&starts) {
        condition = condition.add(
            Condition::all()
                .add(budget_window::Column::BudgetId.eq(b.id))
                .add(budget_window::Column::PeriodStart.eq(*start)),
        );
    }
    let mut query = budget_window::Entity::find()
        .filter(budget_window::Column::TenantId.eq(tenant))
        .filter(condition)
        .order_by_asc(budget_window::Column::Id);
    if lock {
        query = query.lock_exclusive();
    }
    let windows = query.all(conn).await?;
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
/// See [`Reservations::reserve`].
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
    known: Option<(chrono_tz::Tz, Vec<budget::Model>)>,
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
    let reservation_id = ReservationId::new();
    let row = reservation::ActiveModel {
        id: Set(reservation_id),
        tenant_id: Set(tenant),
        agent_id: Set(request.principal.map(|p| p.agent_id)),
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
        ..Default::default()
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

    let (tz, budgets) = match known {
        Some(known) => known,
        None => (
            tenant_timezone(txn, tenant).await?,
            applicable_budgets(txn, tenant, request.principal.as_ref(), currency).await?,
        ),
    };
    let windows = current_windows(txn, tenant, budgets, tz, now, true).await?;

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
        .lock_exclusive()
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

/// Captures inside the caller's write transaction. See [`Reservations::capture`].
///
/// # Errors
/// See [`Reservations::capture`].
pub async fn capture_in(
    txn: &impl ConnectionTrait,
    tenant: TenantId,
    id: ReservationId,
    amount: Money,
    now: DateTime<Utc>,
) -> Result<reservation::Model> {
    // Nothing spent is a release, not a capture.
    let captured = positive_amount("amount", &amount)?;
    let current = load(txn, tenant, id, true).await?;
    same_currency(&current, &amount)?;
    match current.status {
        ReservationStatus::Held => {}
        ReservationStatus::Captured if current.captured_amount == captured => return Ok(current),
        ReservationStatus::Captured => {
            return Err(Error::conflict(
                "reservation",
                format!(
                    "reservation {id} was already captured for {}, not {}",
                    current.captured_amount, captured
                ),
            ));
        }
        other => {
            return Err(Error::conflict(
                "reservation",
                format!(
                    "reservation {id} is {}; only a held reservation can be captured",
                    other.to_value()
                ),
            ));
        }
    }
    let lines = lines_of(txn, tenant, id).await?;
    let windows = locked_windows(txn, tenant, &lines).await?;
    let held = current.amount;
    let extra = captured.checked_sub(held);
    let mut entries = Vec::new();
    for w in &windows {
        let line_held = lines
            .iter()
            .find(|l| l.window_id == w.id)
            .map_or(held, |l| l.amount);
        let reserved = w.reserved.saturating_sub(line_held);
        let spent = w
            .spent
            .checked_add(captured)
            .map_err(|e| Error::invalid("amount", e))?;
        let over = extra.is_some_and(|e| !e.is_zero());
        if over {
            let total = spent
                .checked_add(reserved)
                .map_err(|e| Error::invalid("amount", e))?;
            if total > w.limit_amount {
                let available = w
                    .limit_amount
                    .saturating_sub(w.spent)
                    .saturating_sub(reserved);
                return Err(Error::conflict(
                    "reservation",
                    format!(
                        "capturing {captured} is more than the {held} held, and budget {} has only {available} available",
                        w.budget_id
                    ),
                ));
            }
        }
        write_window(txn, w, spent, reserved, over, now).await?;
        entries.push(ledger_row(
            tenant,
            w,
            id,
            current.currency,
            EntryType::Capture,
            Bucket::Reserved,
            Direction::Credit,
            line_held,
            None,
            now,
        ));
        if !captured.is_zero() {
            entries.push(ledger_row(
                tenant,
                w,
                id,
                current.currency,
                EntryType::Capture,
                Bucket::Spent,
                Direction::Debit,
                captured,
                None,
                now,
            ));
        }
    }
    append_ledger(txn, entries).await?;
    reservation_line::Entity::update_many()
        .col_expr(
            reservation_line::Column::CapturedAmount,
            Expr::value(captured),
        )
        .filter(reservation_line::Column::TenantId.eq(tenant))
        .filter(reservation_line::Column::ReservationId.eq(id))
        .exec(txn)
        .await?;
    let mut row: reservation::ActiveModel = current.into();
    row.status = Set(ReservationStatus::Captured);
    row.captured_amount = Set(captured);
    row.captured_at = Set(Some(now));
    row.updated_at = Set(now);
    Ok(row.update(txn).await?)
}

/// Releases or expires a held reservation inside the caller's write
/// transaction: the whole hold returns to every window.
///
/// # Errors
/// See [`Reservations::release`].
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

/// Refunds inside the caller's write transaction. See [`Reservations::refund`].
///
/// # Errors
/// See [`Reservations::refund`].
pub async fn refund_in(
    txn: &impl ConnectionTrait,
    tenant: TenantId,
    id: ReservationId,
    amount: Money,
    refund_id: &str,
    now: DateTime<Utc>,
) -> Result<reservation::Model> {
    let refund = positive_amount("amount", &amount)?;
    validate_key(refund_id).map_err(|_| {
        Error::invalid(
            "refund_id",
            format!(
                "must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters, got {}",
                refund_id.chars().count()
            ),
        )
    })?;
    let current = load(txn, tenant, id, true).await?;
    same_currency(&current, &amount)?;
    let already = ledger_entry::Entity::find()
        .filter(ledger_entry::Column::TenantId.eq(tenant))
        .filter(ledger_entry::Column::ReservationId.eq(id))
        .filter(ledger_entry::Column::EntryType.eq(EntryType::Refund))
        .filter(ledger_entry::Column::Reference.eq(refund_id))
        .one(txn)
        .await?;
    if already.is_some() {
        return Ok(current);
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
        let spent = w.spent.saturating_sub(taken);
        write_window(txn, w, spent, w.reserved, false, now).await?;
        if !taken.is_zero() {
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
    }
    if entries.is_empty() {
        // Still record the refund id so a repeat is recognised.
        if let Some(w) = windows.first() {
            entries.push(ledger_row(
                tenant,
                w,
                id,
                current.currency,
                EntryType::Refund,
                Bucket::Spent,
                Direction::Credit,
                Amount::ZERO,
                Some(refund_id.to_owned()),
                now,
            ));
        }
    }
    append_ledger(txn, entries).await?;
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
    let mut sums: HashMap<BudgetWindowId, (Decimal, Decimal)> = HashMap::new();
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
    }
    let mut report = Reconciliation {
        windows: windows.len(),
        entries: entries.len(),
        discrepancies: Vec::new(),
    };
    for w in windows {
        let (ledger_spent, ledger_reserved) = sums.get(&w.id).copied().unwrap_or_default();
        let over_limit = w.spent.get() + w.reserved.get() > w.limit_amount.get();
        if ledger_spent != w.spent.get() || ledger_reserved != w.reserved.get() || over_limit {
            report.discrepancies.push(Discrepancy {
                window_id: w.id,
                budget_id: w.budget_id,
                stored_spent: w.spent.get(),
                ledger_spent,
                stored_reserved: w.reserved.get(),
                ledger_reserved,
                over_limit,
            });
        }
    }
    Ok(report)
}
