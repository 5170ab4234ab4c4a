//! Whether an amount fits every window that applies.

use std::cmp::Ordering;

use rust_decimal::Decimal;

use super::{Shortfall, WindowBalance};
use crate::money::Amount;
use crate::{Error, Result};

/// The outcome of [`check_fit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fit {
    /// The amount fits every window.
    Fits,
    /// The amount exceeds these budgets (never empty), most specific first.
    Exceeds(Vec<Shortfall>),
}

impl Fit {
    /// Whether the amount fits every window.
    #[must_use]
    pub fn fits(&self) -> bool {
        matches!(self, Fit::Fits)
    }

    /// The budgets the amount would exceed, most specific first (empty when it
    /// fits).
    #[must_use]
    pub fn shortfalls(&self) -> &[Shortfall] {
        match self {
            Fit::Fits => &[],
            Fit::Exceeds(shortfalls) => shortfalls,
        }
    }
}

/// Checks that `amount` fits every window in `balances`
/// (`spent + reserved + amount <= limit` for each), and otherwise names every
/// budget it would exceed, with its reason code, limit and what remained.
///
/// Shortfalls come in a fixed order, most specific and most constrained first:
/// 1. by scope, most specific first: run, agent, project, team, tenant
///    ([`Scope::specificity_rank`](super::Scope::specificity_rank));
/// 2. then by period, shortest first: daily, weekly, monthly, yearly, lifetime;
/// 3. then by what remained, least first;
/// 4. then by budget id.
///
/// The first shortfall is thus the one closest to the requester, and its code
/// is the natural single reason to show.
///
/// ```
/// use bursar::budget::{BudgetDef, Fit, Period, Scope, check_fit};
/// use bursar::id::{AgentId, BudgetId};
/// use bursar::money::Currency;
/// use rust_decimal::Decimal;
///
/// let daily = BudgetDef {
///     id: BudgetId::new(), scope: Scope::Agent(AgentId::new()), period: Period::Daily,
///     currency: Currency::USD, limit: Decimal::from(100), active: true,
/// };
/// let today = daily.balance(Decimal::from(70), Decimal::from(20)); // 10 left
/// assert_eq!(check_fit(&[today.clone()], Decimal::from(10))?, Fit::Fits);
/// let fit = check_fit(&[today], Decimal::from(11))?;
/// assert_eq!(fit.shortfalls()[0].code, "DAILY_LIMIT_EXCEEDED");
/// assert_eq!(fit.shortfalls()[0].remaining, Decimal::from(10));
/// # Ok::<(), bursar::Error>(())
/// ```
///
/// # Errors
/// [`Error::Invalid`] with field `amount` naming the value when it is zero,
/// negative, or cannot be stored exactly (more than 6 decimal places or more
/// than 20 integer digits); with field `currency` when the balances are not
/// all in one currency.
pub fn check_fit(balances: &[WindowBalance], amount: Decimal) -> Result<Fit> {
    validate_amount(amount)?;
    if let Some(first) = balances.first() {
        if let Some(other) = balances.iter().find(|b| b.currency != first.currency) {
            return Err(Error::invalid(
                "currency",
                format!(
                    "budget windows mix {} (budget {}) and {} (budget {})",
                    first.currency, first.budget_id, other.currency, other.budget_id
                ),
            ));
        }
    }
    let mut short: Vec<(&WindowBalance, Shortfall)> = balances
        .iter()
        .filter_map(|b| b.shortfall(amount).map(|s| (b, s)))
        .collect();
    if short.is_empty() {
        return Ok(Fit::Fits);
    }
    short.sort_by(|(a, sa), (b, sb)| shortfall_order(a, sa, b, sb));
    Ok(Fit::Exceeds(short.into_iter().map(|(_, s)| s).collect()))
}

/// Checks that an amount to reserve or spend is positive and storable.
///
/// # Errors
/// [`Error::Invalid`] with field `amount` naming the value.
pub fn validate_amount(amount: Decimal) -> Result<()> {
    if amount <= Decimal::ZERO {
        return Err(Error::invalid(
            "amount",
            format!("must be greater than zero, got {amount}"),
        ));
    }
    Amount::new(amount).map(|_| ()).map_err(Error::from)
}

fn shortfall_order(
    a: &WindowBalance,
    sa: &Shortfall,
    b: &WindowBalance,
    sb: &Shortfall,
) -> Ordering {
    a.scope
        .specificity_rank()
        .cmp(&b.scope.specificity_rank())
        .then(a.period.cmp(&b.period))
        .then(sa.remaining.cmp(&sb.remaining))
        .then(a.budget_id.cmp(&b.budget_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::{BudgetDef, Period, Scope};
    use crate::codes;
    use crate::id::{AgentId, BudgetId, TeamId};
    use crate::money::Currency;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    fn def(scope: Scope, period: Period, limit: &str) -> BudgetDef {
        BudgetDef {
            id: BudgetId::new(),
            scope,
            period,
            currency: Currency::USD,
            limit: d(limit),
            active: true,
        }
    }

    /// Agent daily 100, team monthly 1,000, tenant monthly 5,000.
    fn hierarchy() -> (BudgetDef, BudgetDef, BudgetDef) {
        (
            def(Scope::Agent(AgentId::new()), Period::Daily, "100"),
            def(Scope::Team(TeamId::new()), Period::Monthly, "1000"),
            def(Scope::Tenant, Period::Monthly, "5000"),
        )
    }

    #[test]
    fn fits_when_every_window_has_room() {
        let (agent, team, tenant) = hierarchy();
        let balances = [
            agent.balance(d("40"), d("10")),
            team.balance(d("500"), d("0")),
            tenant.balance(d("0"), d("0")),
        ];
        assert_eq!(check_fit(&balances, d("50")).unwrap(), Fit::Fits);
        assert!(check_fit(&[], d("1")).unwrap().fits());
    }

    #[test]
    fn an_amount_that_fits_the_agent_but_not_the_team_names_the_team() {
        let (agent, team, tenant) = hierarchy();
        let balances = [
            tenant.balance(d("1200"), d("0")),
            agent.balance(d("0"), d("0")),
            team.balance(d("900"), d("50.50")),
        ];
        let fit = check_fit(&balances, d("60")).unwrap();
        assert_eq!(
            fit.shortfalls(),
            [Shortfall {
                budget_id: team.id,
                code: codes::MONTHLY_LIMIT_EXCEEDED,
                period: Period::Monthly,
                limit: d("1000"),
                remaining: d("49.50"),
            }]
        );
    }

    #[test]
    fn every_shortfall_is_named_most_specific_first() {
        let (agent, team, tenant) = hierarchy();
        let balances = [
            tenant.balance(d("4990"), d("0")),
            team.balance(d("995"), d("0")),
            agent.balance(d("95"), d("2")),
        ];
        let fit = check_fit(&balances, d("20")).unwrap();
        let got: Vec<(BudgetId, &str, Decimal)> = fit
            .shortfalls()
            .iter()
            .map(|s| (s.budget_id, s.code, s.remaining))
            .collect();
        assert_eq!(
            got,
            [
                (agent.id, codes::DAILY_LIMIT_EXCEEDED, d("3")),
                (team.id, codes::MONTHLY_LIMIT_EXCEEDED, d("5")),
                (tenant.id, codes::ORG_BUDGET_EXCEEDED, d("10")),
            ]
        );
    }

    #[test]
    fn same_scope_orders_by_period_then_remaining_then_id() {
        let agent = AgentId::new();
        let monthly = def(Scope::Agent(agent), Period::Monthly, "10");
        let daily = def(Scope::Agent(agent), Period::Daily, "10");
        let tight = def(Scope::Tenant, Period::Monthly, "10");
        let loose = def(Scope::Tenant, Period::Monthly, "20");
        let balances = [
            loose.balance(d("15"), d("0")),
            monthly.balance(d("0"), d("0")),
            tight.balance(d("9"), d("0")),
            daily.balance(d("0"), d("0")),
        ];
        let ids: Vec<BudgetId> = check_fit(&balances, d("11"))
            .unwrap()
            .shortfalls()
            .iter()
            .map(|s| s.budget_id)
            .collect();
        assert_eq!(ids, [daily.id, monthly.id, tight.id, loose.id]);
    }

    #[test]
    fn exactly_the_remainder_fits() {
        let (agent, ..) = hierarchy();
        let b = agent.balance(d("0.1"), d("0.2"));
        assert!(
            check_fit(std::slice::from_ref(&b), d("99.7"))
                .unwrap()
                .fits()
        );
        assert!(!check_fit(&[b], d("99.700001")).unwrap().fits());
    }

    #[test]
    fn zero_negative_and_unstorable_amounts_are_refused_by_name() {
        let (agent, ..) = hierarchy();
        let balances = [agent.balance(d("0"), d("0"))];
        for (amount, needle) in [
            ("0", "got 0"),
            ("-5", "-5"),
            ("0.0000001", "0.0000001"),
            ("100000000000000000000", "100000000000000000000"),
        ] {
            let err = check_fit(&balances, d(amount)).unwrap_err();
            assert!(
                matches!(&err, Error::Invalid { field, reason } if field == "amount" && reason.contains(needle)),
                "{amount}: {err:?}"
            );
        }
    }

    #[test]
    fn mixed_currencies_are_refused() {
        let (agent, team, _) = hierarchy();
        let mut eur = team.balance(d("0"), d("0"));
        eur.currency = Currency::EUR;
        let err = check_fit(&[agent.balance(d("0"), d("0")), eur], d("1")).unwrap_err();
        assert!(
            matches!(&err, Error::Invalid { field, .. } if field == "currency"),
            "{err:?}"
        );
    }

    #[test]
    fn balances_beyond_decimal_range_do_not_panic() {
        let (agent, ..) = hierarchy();
        let mut huge = agent.balance(Decimal::MAX, Decimal::MAX);
        huge.limit = Decimal::MAX;
        assert_eq!(huge.remaining(), Decimal::ZERO);
        assert!(!check_fit(&[huge], d("1")).unwrap().fits());
    }
}
