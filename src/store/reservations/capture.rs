//! Capture: spend what was held (or a settled amount), and post charges that
//! arrive without a hold.

use super::*;

/// The windows a reservation's lines point at, locked in ascending id order.
pub(super) async fn locked_windows(
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

pub(super) fn same_currency(reservation: &reservation::Model, money: &Money) -> Result<()> {
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
        .all(conn)
        .await
        .map(crate::store::repo::first)?)
}

/// Refuses to spend a hold whose purchase intent is not approved: a hold
/// waiting for a human (or one a human rejected) is not the agent's to spend.
pub(super) async fn ensure_spendable(
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
    let mut balances = Vec::with_capacity(windows.len());
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
        balances.push(NewBalance {
            window: w,
            spent,
            reserved,
        });
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
    write_windows(txn, &balances, false, now).await?;
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
    let reservation = crate::store::repo::update_owned(txn, row).await?;
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
