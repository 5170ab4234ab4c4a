//! The ledger: one row per movement on a window.

use super::*;

#[allow(clippy::too_many_arguments)]
pub(super) fn ledger_row(
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

/// Appends `rows` to the ledger, in one insert.
pub(super) async fn append_ledger(
    conn: &impl ConnectionTrait,
    rows: Vec<ledger_entry::ActiveModel>,
) -> Result<()> {
    let mut writes = Deferred::default();
    hold_ledger(conn.get_database_backend(), &mut writes, rows);
    writes.flush(conn).await
}

/// Adds the insert of `rows` to `writes` ([`Deferred`]).
pub(super) fn hold_ledger(
    backend: sea_orm::DbBackend,
    writes: &mut Deferred,
    rows: Vec<ledger_entry::ActiveModel>,
) {
    if rows.is_empty() {
        return;
    }
    let count = rows.len() as u64;
    writes.add(
        ledger_entry::Entity::insert_many(rows).build(backend),
        count,
    );
}
