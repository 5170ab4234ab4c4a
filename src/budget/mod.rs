//! Budgets, without I/O: period windows in a tenant's time zone, which budgets
//! apply to a request, and whether an amount fits.
//!
//! Everything here is a pure function of its arguments: the instant and the
//! tenant's time zone are passed in, never read from a clock or a database.
//! The flow for one request:
//!
//! 1. [`applicable`] picks the budgets whose scope contains the [`Principal`]
//!    and whose currency matches (sorted by id);
//! 2. [`Period::window`] (or [`BudgetDef::window`]) gives each one's window
//!    for `now` in the tenant's time zone ([`parse_timezone`]);
//! 3. [`check_fit`] tells whether the amount fits every [`WindowBalance`],
//!    and otherwise names every [`Shortfall`], most specific first.
//!
//! ```
//! use bursar::budget::{BudgetDef, Period, Principal, Scope, applicable, check_fit, parse_timezone};
//! use bursar::id::{AgentId, BudgetId};
//! use bursar::money::Currency;
//! use chrono::{TimeZone, Utc};
//! use rust_decimal::Decimal;
//!
//! let agent = AgentId::new();
//! let budgets = vec![BudgetDef {
//!     id: BudgetId::new(), scope: Scope::Agent(agent), period: Period::Daily,
//!     currency: Currency::USD, limit: Decimal::from(100), active: true,
//! }];
//! let tz = parse_timezone("Europe/Berlin")?;
//! let now = Utc.with_ymd_and_hms(2026, 3, 29, 10, 0, 0).unwrap();
//!
//! let applying = applicable(&budgets, &Principal::agent(agent), Currency::USD);
//! let window = applying[0].window(now, tz); // 2026-03-29 00:00 CET .. 2026-03-30 00:00 CEST
//! assert_eq!(window.duration().map(|d| d.num_hours()), Some(23));
//! // Spent and reserved in that window come from the store.
//! let balance = applying[0].balance(Decimal::from(95), Decimal::ZERO);
//! let fit = check_fit(&[balance], Decimal::from(10))?;
//! assert_eq!(fit.shortfalls()[0].code, "DAILY_LIMIT_EXCEEDED");
//! # Ok::<(), bursar::Error>(())
//! ```

mod apply;
mod balance;
mod fit;
mod period;
mod window;

pub use apply::{BudgetDef, Principal, applicable};
pub use balance::{Shortfall, WindowBalance, exceeded_code};
pub use fit::{Fit, check_fit, validate_amount};
pub use period::Period;
pub use window::{LIFETIME_START, MAX_TIMEZONE_LEN, Window, parse_timezone};

use serde::{Deserialize, Serialize};

use crate::id::{AgentId, ProjectId, RunId, TeamId};

/// Whose spending a budget caps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Scope {
    /// Everything spent in the tenant.
    Tenant,
    /// Everything spent by agents of one team.
    Team(TeamId),
    /// Everything spent on one project.
    Project(ProjectId),
    /// One agent's spending.
    Agent(AgentId),
    /// One agent run's spending.
    Run(RunId),
}

impl Scope {
    /// The stored kind: `tenant`, `team`, `project`, `agent` or `run`.
    #[must_use]
    pub const fn kind(&self) -> &'static str {
        match self {
            Scope::Tenant => "tenant",
            Scope::Team(_) => "team",
            Scope::Project(_) => "project",
            Scope::Agent(_) => "agent",
            Scope::Run(_) => "run",
        }
    }
}
