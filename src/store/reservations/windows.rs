//! Which budgets apply to a request, their current windows (created and
//! locked as needed) and their balances.

use sea_orm::sea_query::ExprTrait as _;

use super::*;

/// The tenant's time zone, for finding windows.
pub(crate) async fn tenant_timezone(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
) -> Result<chrono_tz::Tz> {
    let row = crate::entity::tenant::Entity::find_by_id(tenant)
        .all(conn)
        .await
        .map(crate::store::repo::first)?
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
    Ok(applicable(tenant, principal).all(conn).await?)
}

/// The query of [`applicable_budgets`].
fn applicable(tenant: TenantId, principal: Option<&Principal>) -> sea_orm::Select<budget::Entity> {
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
    budget::Entity::find()
        .filter(budget::Column::TenantId.eq(tenant))
        .filter(budget::Column::IsActive.eq(true))
        .filter(scopes)
        .order_by_asc(budget::Column::Id)
}

/// A budget and its current window, when that exists, as one row of
/// [`budgets_with_windows`] returns them.
#[derive(sea_orm::FromQueryResult)]
struct BudgetWithWindow {
    #[sea_orm(nested)]
    budget: budget::Model,
    #[sea_orm(nested(prefix = "window_"))]
    window: Option<budget_window::Model>,
}

/// [`applicable_budgets`] with, beside each, its window of the period that
/// contains `now` in `tz` when that window exists, in one statement:
/// `… FROM budgets LEFT JOIN budget_windows ON budget_windows.tenant_id = ?
/// AND budget_windows.budget_id = budgets.id AND budget_windows.period_start
/// = CASE WHEN budgets.period = 'daily' THEN ? … END`. Nothing is locked;
/// this serves SQLite, whose write transaction holds the whole database (see
/// [`budgets_and_windows`]).
async fn budgets_with_windows(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    principal: Option<&Principal>,
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
) -> Result<Vec<(budget::Model, Option<budget_window::Model>)>> {
    let read = crate::store::repo::join_prefixed::<_, budget_window::Entity>(
        applicable(tenant, principal),
        sea_orm::JoinType::LeftJoin,
        current_window_of_budget(tenant, tz, now),
        "window_",
    );
    let rows = read.into_model::<BudgetWithWindow>().all(conn).await?;
    Ok(rows.into_iter().map(|r| (r.budget, r.window)).collect())
}

/// `budget_windows.tenant_id = ? AND budget_windows.budget_id = budgets.id
/// AND budget_windows.period_start = CASE WHEN budgets.period = 'daily' THEN
/// ? … END`: the window of the period that contains `now` in `tz`.
fn current_window_of_budget(tenant: TenantId, tz: chrono_tz::Tz, now: DateTime<Utc>) -> Condition {
    let mut start = CaseStatement::new();
    for period in crate::budget::Period::ALL {
        start = start.case(
            budget::Column::Period.eq(period),
            period.window(now, tz).start,
        );
    }
    Condition::all()
        .add(budget_window::Column::TenantId.eq(tenant))
        .add(
            Expr::col((budget_window::Entity, budget_window::Column::BudgetId))
                .equals((budget::Entity, budget::Column::Id)),
        )
        .add(sea_orm::sea_query::ExprTrait::eq(
            Expr::col((budget_window::Entity, budget_window::Column::PeriodStart)),
            start,
        ))
}

/// A budget, its current window, and how many budgets apply in all, as one
/// row of [`budgets_with_locked_windows`] returns them.
#[derive(sea_orm::FromQueryResult)]
struct BudgetWithLockedWindow {
    #[sea_orm(nested)]
    budget: budget::Model,
    #[sea_orm(nested(prefix = "window_"))]
    window: budget_window::Model,
    applicable: i64,
}

/// PostgreSQL: [`applicable_budgets`] with the current window of each,
/// locked in ascending window id order (the lock order), in one statement:
/// `SELECT budgets.*, budget_windows.*, (SELECT count(*) FROM budgets WHERE
/// …applicable…) FROM budgets JOIN budget_windows ON … ORDER BY
/// budget_windows.id FOR NO KEY UPDATE OF budget_windows`. `None` when a
/// budget that applies has no current window yet (or none has one), which
/// the row count tells: the caller then creates them ([`current_windows`]).
async fn budgets_with_locked_windows(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    principal: &Principal,
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
) -> Result<Option<Vec<(budget::Model, budget_window::Model)>>> {
    let mut count = sea_orm::QueryTrait::into_query(applicable(tenant, Some(principal)));
    count
        .clear_selects()
        .clear_order_by()
        .expr(Expr::col((budget::Entity, budget::Column::Id)).count());
    let mut read = crate::store::repo::join_prefixed::<_, budget_window::Entity>(
        applicable(tenant, Some(principal)),
        sea_orm::JoinType::InnerJoin,
        current_window_of_budget(tenant, tz, now),
        "window_",
    )
    .column_as(Expr::SubQuery(None, Box::new(count.into())), "applicable");
    sea_orm::QueryTrait::query(&mut read)
        .clear_order_by()
        .order_by(
            (budget_window::Entity, budget_window::Column::Id),
            sea_orm::Order::Asc,
        )
        .lock_with_tables(LockType::NoKeyUpdate, [budget_window::Entity]);
    let rows = read
        .into_model::<BudgetWithLockedWindow>()
        .all(conn)
        .await?;
    let applicable = rows.first().map_or(0, |r| r.applicable);
    if rows.is_empty() || usize::try_from(applicable).ok() != Some(rows.len()) {
        return Ok(None);
    }
    Ok(Some(
        rows.into_iter().map(|r| (r.budget, r.window)).collect(),
    ))
}

/// What a request's money is held on: the budgets that apply to
/// `principal` in another currency than `currency` (refused, see
/// [`currency_mismatches`]), and the current window of each one in
/// `currency`, created when absent and locked, in ascending window id order
/// (the lock order, docs/budgets.md). The budgets and their windows are
/// read in one statement: on SQLite, where the write transaction already
/// holds the database and nothing is locked row by row, with
/// [`budgets_with_windows`]; on PostgreSQL, the windows locked as they are
/// read, with [`budgets_with_locked_windows`]. A window found missing (the
/// first request of a period), or on PostgreSQL no window at all, takes
/// [`current_windows`], which creates them.
pub(crate) async fn budgets_and_windows(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    principal: &Principal,
    currency: Currency,
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
) -> Result<(Vec<Shortfall>, Vec<(budget::Model, budget_window::Model)>)> {
    if conn.get_database_backend() != sea_orm::DbBackend::Sqlite {
        if let Some(pairs) = budgets_with_locked_windows(conn, tenant, principal, tz, now).await? {
            let mismatched = currency_mismatches(pairs.iter().map(|(b, _)| b), currency);
            let held = pairs
                .into_iter()
                .filter(|(b, _)| b.currency == currency)
                .collect();
            return Ok((mismatched, held));
        }
        let budgets = applicable_budgets(conn, tenant, Some(principal)).await?;
        let mismatched = currency_mismatches(&budgets, currency);
        let budgets = budgets
            .into_iter()
            .filter(|b| b.currency == currency)
            .collect();
        let windows = current_windows(conn, tenant, budgets, tz, now, true).await?;
        return Ok((mismatched, windows));
    }
    let pairs = budgets_with_windows(conn, tenant, Some(principal), tz, now).await?;
    let mismatched = currency_mismatches(pairs.iter().map(|(b, _)| b), currency);
    let in_currency: Vec<_> = pairs
        .into_iter()
        .filter(|(b, _)| b.currency == currency)
        .collect();
    if in_currency.iter().all(|(_, w)| w.is_some()) {
        let mut held: Vec<_> = in_currency
            .into_iter()
            .filter_map(|(b, w)| Some((b, w?)))
            .collect();
        held.sort_by_key(|(_, w)| w.id);
        return Ok((mismatched, held));
    }
    let budgets = in_currency.into_iter().map(|(b, _)| b).collect();
    let windows = current_windows(conn, tenant, budgets, tz, now, true).await?;
    Ok((mismatched, windows))
}

/// The applicable budgets kept in another currency than `currency`, as
/// shortfalls with the code [`BUDGET_CURRENCY_MISMATCH`](crate::codes::BUDGET_CURRENCY_MISMATCH)
/// (nothing can be said of what remains, so `remaining` is zero).
pub(crate) fn currency_mismatches<'a>(
    budgets: impl IntoIterator<Item = &'a budget::Model>,
    currency: Currency,
) -> Vec<Shortfall> {
    budgets
        .into_iter()
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

/// A window's new balance, to be written by [`write_windows`].
pub(super) struct NewBalance<'a> {
    /// The window as it was read under its lock.
    pub(super) window: &'a budget_window::Model,
    pub(super) spent: Amount,
    pub(super) reserved: Amount,
}

/// Sets the balances of a reservation's windows in one statement, each
/// guarded by the balance read under the lock: `UPDATE … SET spent = CASE id
/// WHEN … END, reserved = CASE id WHEN … END WHERE tenant_id = ? AND ((id = ?
/// AND spent = ? AND reserved = ? AND limit_amount >= ?) OR …)` (the limit
/// term only when the new total must fit). The guards make the write a
/// compare-and-set on every window at once: if anything moved one of them
/// since it was read, or a total that must fit does not, fewer rows than
/// windows match and the call fails, and the caller's transaction writes
/// nothing.
pub(super) async fn write_windows(
    conn: &impl ConnectionTrait,
    balances: &[NewBalance<'_>],
    must_fit: bool,
    now: DateTime<Utc>,
) -> Result<()> {
    let Some(first) = balances.first() else {
        return Ok(());
    };
    let mut guards = Condition::any();
    for b in balances {
        let mut guard = Condition::all()
            .add(budget_window::Column::Id.eq(b.window.id))
            .add(budget_window::Column::Spent.eq(b.window.spent))
            .add(budget_window::Column::Reserved.eq(b.window.reserved));
        if must_fit {
            let total = b
                .spent
                .checked_add(b.reserved)
                .map_err(|e| Error::invalid("amount", e))?;
            guard = guard.add(budget_window::Column::LimitAmount.gte(total));
        }
        guards = guards.add(guard);
    }
    // One window (the common case) is set to plain values; several are set
    // by their id.
    let (spent, reserved): (Expr, Expr) = match balances {
        [only] => (Expr::value(only.spent), Expr::value(only.reserved)),
        _ => {
            let by_id = |value: fn(&NewBalance<'_>) -> Amount, column: budget_window::Column| {
                let mut case = CaseStatement::new();
                for b in balances {
                    case = case.case(budget_window::Column::Id.eq(b.window.id), value(b));
                }
                case.finally(Expr::col(column)).into()
            };
            (
                by_id(|b| b.spent, budget_window::Column::Spent),
                by_id(|b| b.reserved, budget_window::Column::Reserved),
            )
        }
    };
    let result = budget_window::Entity::update_many()
        .col_expr(budget_window::Column::Spent, spent)
        .col_expr(budget_window::Column::Reserved, reserved)
        .col_expr(budget_window::Column::UpdatedAt, Expr::value(now))
        .filter(budget_window::Column::TenantId.eq(first.window.tenant_id))
        .filter(guards)
        .exec(conn)
        .await?;
    if result.rows_affected != balances.len() as u64 {
        let ids: Vec<String> = balances.iter().map(|b| b.window.id.to_string()).collect();
        return Err(Error::conflict(
            "budget_window",
            format!(
                "window {} changed while it was being updated; nothing was written",
                ids.join(", ")
            ),
        ));
    }
    Ok(())
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;
    use crate::store::repo::Ctx;
    use crate::store::{BudgetRepository, NewBudget, NewTenant, TenantRepository};

    fn amount(text: &str) -> Amount {
        Amount::new(text.parse().expect("decimal")).expect("amount")
    }

    fn balance<'a>(
        window: &'a budget_window::Model,
        spent: &str,
        reserved: &str,
    ) -> NewBalance<'a> {
        NewBalance {
            window,
            spent: amount(spent),
            reserved: amount(reserved),
        }
    }

    /// A tenant with two monthly budgets (limits 100 and 50) and their
    /// current windows, as stored.
    async fn two_windows() -> (crate::Store, TenantId, Vec<budget_window::Model>) {
        let store = crate::Store::connect("sqlite::memory:")
            .await
            .expect("store");
        let tenant = store
            .tenants()
            .create(NewTenant::new("Acme", "acme"))
            .await
            .expect("tenant")
            .id;
        let scope = store.tenant(tenant);
        for limit in ["100", "50"] {
            scope
                .budgets()
                .create(NewBudget::tenant().monthly(limit.parse().expect("limit"), "USD"))
                .await
                .expect("budget");
        }
        let ctx = Ctx::scoped(&store, tenant);
        let txn = ctx.begin_write().await.expect("begin");
        let budgets = applicable_budgets(&*txn, tenant, None)
            .await
            .expect("budgets");
        let windows = current_windows(&*txn, tenant, budgets, chrono_tz::UTC, ctx.now(), true)
            .await
            .expect("windows");
        txn.commit().await.expect("commit");
        (store, tenant, windows.into_iter().map(|(_, w)| w).collect())
    }

    async fn stored(store: &crate::Store, tenant: TenantId) -> Vec<(Amount, Amount)> {
        budget_window::Entity::find()
            .filter(budget_window::Column::TenantId.eq(tenant))
            .order_by_asc(budget_window::Column::Id)
            .all(store.connection())
            .await
            .expect("windows")
            .into_iter()
            .map(|w| (w.spent, w.reserved))
            .collect()
    }

    #[tokio::test]
    async fn several_windows_get_each_their_own_balance_in_one_statement() {
        let (store, tenant, windows) = two_windows().await;
        assert_eq!(windows.len(), 2);
        let txn = Ctx::scoped(&store, tenant)
            .begin_write()
            .await
            .expect("begin");
        let balances = [
            balance(&windows[0], "1", "2"),
            balance(&windows[1], "3", "4"),
        ];
        write_windows(&*txn, &balances, true, Utc::now())
            .await
            .expect("written");
        txn.commit().await.expect("commit");
        assert_eq!(
            stored(&store, tenant).await,
            [(amount("1"), amount("2")), (amount("3"), amount("4"))]
        );
    }

    #[tokio::test]
    async fn a_window_that_moved_or_would_not_fit_fails_the_whole_write() {
        let (store, tenant, mut windows) = two_windows().await;
        // The first window is the one with the limit of 100, the second the
        // one with 50 (both lists below are in the same order).
        windows.sort_by_key(|w| std::cmp::Reverse(w.limit_amount));
        let by_id = windows[0].id < windows[1].id;
        let in_store = |pairs: [(Amount, Amount); 2]| {
            let [a, b] = pairs;
            if by_id { vec![a, b] } else { vec![b, a] }
        };
        // The second window as it was read, before someone else reserved 5.
        let mut moved = windows[1].clone();
        moved.reserved = amount("5");
        for (second, must_fit, what) in [
            (balance(&moved, "0", "6"), false, "moved"),
            (
                balance(&windows[1], "20", "31"),
                true,
                "over its limit of 50",
            ),
        ] {
            let txn = Ctx::scoped(&store, tenant)
                .begin_write()
                .await
                .expect("begin");
            let first = balance(&windows[0], "0", "7");
            let err = write_windows(&*txn, &[first, second], must_fit, Utc::now())
                .await
                .expect_err(what);
            assert!(matches!(err, Error::Conflict { .. }), "{what}: {err:?}");
            assert!(
                err.to_string().contains(&windows[1].id.to_string()),
                "{err}"
            );
            txn.rollback().await.expect("rollback");
        }
        // The same balances that fit are written.
        let txn = Ctx::scoped(&store, tenant)
            .begin_write()
            .await
            .expect("begin");
        let fits = [
            balance(&windows[0], "0", "100"),
            balance(&windows[1], "20", "30"),
        ];
        write_windows(&*txn, &fits, true, Utc::now())
            .await
            .expect("fits");
        txn.commit().await.expect("commit");
        assert_eq!(
            stored(&store, tenant).await,
            in_store([(amount("0"), amount("100")), (amount("20"), amount("30"))])
        );
    }
}
