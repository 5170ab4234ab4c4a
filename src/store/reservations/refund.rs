//! Refund: return captured money to the budgets.

use super::*;

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
        .all(txn)
        .await
        .map(crate::store::repo::first)?;
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
    let mut balances = Vec::with_capacity(windows.len());
    for w in &windows {
        // Never below zero: take back at most what the window has spent.
        let taken = if refund > w.spent { w.spent } else { refund };
        if taken.is_zero() {
            continue;
        }
        balances.push(NewBalance {
            window: w,
            spent: w.spent.saturating_sub(taken),
            reserved: w.reserved,
        });
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
    write_windows(txn, &balances, false, now).await?;
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
    Ok(crate::store::repo::update_owned(txn, row).await?)
}
