//! Which budgets apply to a request, their current windows (created and
//! locked as needed) and their balances.

use super::*;

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
pub(super) async fn write_window(
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
