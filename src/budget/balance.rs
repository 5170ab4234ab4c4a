use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{Period, Scope};
use crate::codes;
use crate::id::BudgetId;
use crate::money::Currency;

/// The state of one budget's current window: its limit and what is already
/// spent and held.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowBalance {
    /// The budget this window belongs to.
    pub budget_id: BudgetId,
    /// Whose spending the budget caps.
    pub scope: Scope,
    /// How often it resets.
    pub period: Period,
    /// The budget's currency.
    pub currency: Currency,
    /// The most that may be spent plus held in the window.
    #[serde(with = "crate::money::decimal_text")]
    pub limit: Decimal,
    /// Captured so far in the window.
    #[serde(with = "crate::money::decimal_text")]
    pub spent: Decimal,
    /// Held by live reservations.
    #[serde(with = "crate::money::decimal_text")]
    pub reserved: Decimal,
}

impl WindowBalance {
    /// `limit - spent - reserved`, floored at zero (also zero when the
    /// arithmetic would overflow [`Decimal`]).
    #[must_use]
    pub fn remaining(&self) -> Decimal {
        self.limit
            .checked_sub(self.spent)
            .and_then(|r| r.checked_sub(self.reserved))
            .map_or(Decimal::ZERO, |r| r.max(Decimal::ZERO))
    }

    /// Whether `amount` more fits: `spent + reserved + amount <= limit`,
    /// compared exactly. A sum that would overflow [`Decimal`] does not fit.
    #[must_use]
    pub fn fits(&self, amount: Decimal) -> bool {
        self.spent
            .checked_add(self.reserved)
            .and_then(|used| used.checked_add(amount))
            .is_some_and(|total| total <= self.limit)
    }

    /// The shortfall `amount` would cause, or `None` when it fits.
    #[must_use]
    pub fn shortfall(&self, amount: Decimal) -> Option<Shortfall> {
        (!self.fits(amount)).then(|| Shortfall {
            budget_id: self.budget_id,
            code: exceeded_code(self.scope, self.period),
            period: self.period,
            limit: self.limit,
            remaining: self.remaining(),
        })
    }
}

/// A budget that an amount would exceed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shortfall {
    /// The budget that did not fit.
    pub budget_id: BudgetId,
    /// Its reason code (see [`exceeded_code`]).
    pub code: &'static str,
    /// Its period.
    pub period: Period,
    /// Its limit.
    #[serde(with = "crate::money::decimal_text")]
    pub limit: Decimal,
    /// What remained in its window before the request.
    #[serde(with = "crate::money::decimal_text")]
    pub remaining: Decimal,
}

/// The reason code for exceeding a budget: [`codes::ORG_BUDGET_EXCEEDED`] for a
/// tenant-wide budget, [`codes::RUN_LIMIT_EXCEEDED`] for a run's cost cap,
/// otherwise the period's code ([`codes::DAILY_LIMIT_EXCEEDED`],
/// [`codes::MONTHLY_LIMIT_EXCEEDED`], …).
#[must_use]
pub const fn exceeded_code(scope: Scope, period: Period) -> &'static str {
    match (scope, period) {
        (Scope::Tenant, _) => codes::ORG_BUDGET_EXCEEDED,
        (Scope::Run(_), _) => codes::RUN_LIMIT_EXCEEDED,
        (_, Period::Daily) => codes::DAILY_LIMIT_EXCEEDED,
        (_, Period::Weekly) => codes::WEEKLY_LIMIT_EXCEEDED,
        (_, Period::Monthly) => codes::MONTHLY_LIMIT_EXCEEDED,
        (_, Period::Yearly) => codes::YEARLY_LIMIT_EXCEEDED,
        (_, Period::Lifetime) => codes::LIFETIME_LIMIT_EXCEEDED,
    }
}
