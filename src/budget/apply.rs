//! Which budgets apply to a request.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{Period, Scope, Window, WindowBalance};
use crate::id::{AgentId, BudgetId, ProjectId, RunId, TeamId};
use crate::money::Currency;

/// A budget definition: whose spending it caps, how often it resets, in which
/// currency, and up to how much.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetDef {
    /// The budget.
    pub id: BudgetId,
    /// Whose spending it caps.
    pub scope: Scope,
    /// How often it resets.
    pub period: Period,
    /// Its currency; only requests in this currency count against it.
    pub currency: Currency,
    /// The most that may be spent plus held in one window.
    #[serde(with = "crate::money::decimal_text")]
    pub limit: Decimal,
    /// Whether it is enforced; inactive budgets never apply.
    pub active: bool,
}

impl BudgetDef {
    /// Whether this budget caps a request by `principal` in `currency`: it is
    /// active, its currency matches and its scope contains the principal.
    #[must_use]
    pub fn applies_to(&self, principal: &Principal, currency: Currency) -> bool {
        self.active && self.currency == currency && self.scope.contains(principal)
    }

    /// This budget's window containing `at` in the tenant's time zone `tz`
    /// (see [`Period::window`]).
    #[must_use]
    pub fn window(&self, at: DateTime<Utc>, tz: Tz) -> Window {
        self.period.window(at, tz)
    }

    /// The balance of one of this budget's windows, given what is spent and
    /// reserved in it.
    #[must_use]
    pub fn balance(&self, spent: Decimal, reserved: Decimal) -> WindowBalance {
        WindowBalance {
            budget_id: self.id,
            scope: self.scope,
            period: self.period,
            currency: self.currency,
            limit: self.limit,
            spent,
            reserved,
        }
    }
}

/// Who is spending: the agent, and the team, project and run it acts for.
///
/// ```
/// use bursar::budget::{Principal, Scope};
/// use bursar::id::{AgentId, TeamId};
///
/// let (agent, team) = (AgentId::new(), TeamId::new());
/// let who = Principal::agent(agent).team(team);
/// assert!(Scope::Tenant.contains(&who));
/// assert!(Scope::Team(team).contains(&who));
/// assert!(!Scope::Team(TeamId::new()).contains(&who));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Principal {
    /// The agent making the request.
    pub agent_id: AgentId,
    /// The agent's team, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<TeamId>,
    /// The agent's project, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<ProjectId>,
    /// The run the request belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<RunId>,
}

impl Principal {
    /// An agent with no team, project or run.
    #[must_use]
    pub const fn agent(agent: AgentId) -> Self {
        Self {
            agent_id: agent,
            team_id: None,
            project_id: None,
            run_id: None,
        }
    }

    /// Sets the agent's team.
    #[must_use]
    pub const fn team(mut self, team: TeamId) -> Self {
        self.team_id = Some(team);
        self
    }

    /// Sets the agent's project.
    #[must_use]
    pub const fn project(mut self, project: ProjectId) -> Self {
        self.project_id = Some(project);
        self
    }

    /// Sets the run the request belongs to.
    #[must_use]
    pub const fn run(mut self, run: RunId) -> Self {
        self.run_id = Some(run);
        self
    }
}

impl Scope {
    /// Whether a request by `principal` counts against a budget of this scope:
    /// always for the tenant, otherwise when the team, project, agent or run is
    /// the principal's.
    #[must_use]
    pub fn contains(&self, principal: &Principal) -> bool {
        match *self {
            Scope::Tenant => true,
            Scope::Team(team) => principal.team_id == Some(team),
            Scope::Project(project) => principal.project_id == Some(project),
            Scope::Agent(agent) => principal.agent_id == agent,
            Scope::Run(run) => principal.run_id == Some(run),
        }
    }

    /// How specific the scope is, most specific first: run 0, agent 1,
    /// project 2, team 3, tenant 4. Used to order shortfalls.
    #[must_use]
    pub const fn specificity_rank(&self) -> u8 {
        match self {
            Scope::Run(_) => 0,
            Scope::Agent(_) => 1,
            Scope::Project(_) => 2,
            Scope::Team(_) => 3,
            Scope::Tenant => 4,
        }
    }
}

/// The budgets that cap a request by `principal` in `currency`: active, in that
/// currency, and scoped to the tenant or to the principal's team, project,
/// agent or run. Sorted by budget id, which is also the order in which their
/// window rows are locked.
///
/// ```
/// use bursar::budget::{BudgetDef, Period, Principal, Scope, applicable};
/// use bursar::id::{AgentId, BudgetId};
/// use bursar::money::Currency;
/// use rust_decimal::Decimal;
///
/// let agent = AgentId::new();
/// let def = |scope, currency| BudgetDef {
///     id: BudgetId::new(), scope, period: Period::Monthly, currency,
///     limit: Decimal::from(500), active: true,
/// };
/// let budgets = [
///     def(Scope::Agent(agent), Currency::USD),
///     def(Scope::Agent(AgentId::new()), Currency::USD), // another agent
///     def(Scope::Tenant, Currency::EUR),                // another currency
/// ];
/// let found = applicable(&budgets, &Principal::agent(agent), Currency::USD);
/// assert_eq!(found.len(), 1);
/// assert_eq!(found[0].id, budgets[0].id);
/// ```
#[must_use]
pub fn applicable<'a>(
    budgets: &'a [BudgetDef],
    principal: &Principal,
    currency: Currency,
) -> Vec<&'a BudgetDef> {
    let mut found: Vec<&BudgetDef> = budgets
        .iter()
        .filter(|b| b.applies_to(principal, currency))
        .collect();
    found.sort_by_key(|b| b.id);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(scope: Scope, currency: Currency, active: bool) -> BudgetDef {
        BudgetDef {
            id: BudgetId::new(),
            scope,
            period: Period::Daily,
            currency,
            limit: Decimal::from(100),
            active,
        }
    }

    #[test]
    fn every_matching_scope_applies_and_nothing_else() {
        let (agent, team, project, run) = (
            AgentId::new(),
            TeamId::new(),
            ProjectId::new(),
            RunId::new(),
        );
        let who = Principal::agent(agent).team(team).project(project).run(run);
        let matching = [
            def(Scope::Run(run), Currency::USD, true),
            def(Scope::Agent(agent), Currency::USD, true),
            def(Scope::Project(project), Currency::USD, true),
            def(Scope::Team(team), Currency::USD, true),
            def(Scope::Tenant, Currency::USD, true),
        ];
        let others = [
            def(Scope::Run(RunId::new()), Currency::USD, true),
            def(Scope::Agent(AgentId::new()), Currency::USD, true),
            def(Scope::Project(ProjectId::new()), Currency::USD, true),
            def(Scope::Team(TeamId::new()), Currency::USD, true),
            def(Scope::Tenant, Currency::EUR, true),
            def(Scope::Agent(agent), Currency::JPY, true),
            def(Scope::Agent(agent), Currency::USD, false),
            def(Scope::Tenant, Currency::USD, false),
        ];
        // Interleave and reverse so that input order says nothing.
        let mut all: Vec<BudgetDef> = matching.iter().chain(&others).cloned().collect();
        all.reverse();
        let found: Vec<BudgetId> = applicable(&all, &who, Currency::USD)
            .iter()
            .map(|b| b.id)
            .collect();
        let mut expected: Vec<BudgetId> = matching.iter().map(|b| b.id).collect();
        expected.sort();
        assert_eq!(found, expected);
    }

    #[test]
    fn a_principal_without_team_project_or_run_gets_tenant_and_agent_budgets() {
        let (agent, team) = (AgentId::new(), TeamId::new());
        let all = [
            def(Scope::Tenant, Currency::USD, true),
            def(Scope::Agent(agent), Currency::USD, true),
            def(Scope::Team(team), Currency::USD, true),
            def(Scope::Project(ProjectId::new()), Currency::USD, true),
            def(Scope::Run(RunId::new()), Currency::USD, true),
        ];
        let found = applicable(&all, &Principal::agent(agent), Currency::USD);
        let kinds: Vec<&str> = found.iter().map(|b| b.scope.kind()).collect();
        assert_eq!(found.len(), 2, "{kinds:?}");
        assert!(kinds.contains(&"tenant") && kinds.contains(&"agent"));
        assert!(applicable(&all, &Principal::agent(agent), Currency::EUR).is_empty());
        assert_eq!(
            applicable(&all, &Principal::agent(agent).team(team), Currency::USD).len(),
            3
        );
    }
}
