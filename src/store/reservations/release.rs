//! Release and expiry: end a hold and return its amount to the budgets.

use super::*;

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
    let mut balances = Vec::with_capacity(windows.len());
    for w in &windows {
        let line_held = lines
            .iter()
            .find(|l| l.window_id == w.id)
            .map_or(current.amount, |l| l.amount);
        let reserved = w.reserved.saturating_sub(line_held);
        balances.push(NewBalance {
            window: w,
            spent: w.spent,
            reserved,
        });
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
    write_windows(txn, &balances, false, now).await?;
    append_ledger(txn, entries).await?;
    let mut row: reservation::ActiveModel = current.into();
    row.status = Set(to);
    row.released_at = Set(Some(now));
    row.updated_at = Set(now);
    Ok(crate::store::repo::update_owned(txn, row).await?)
}
