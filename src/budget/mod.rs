//! Budgets, without I/O: period windows in a tenant's time zone, which budgets
//! apply to a request, and whether an amount fits.
//!

mod balance;
mod period;
mod window;

pub use balance::{Shortfall, WindowBalance, exceeded_code};
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
