//! Reconcile: recompute every window from the ledger and report the
//! differences.

use super::*;

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
