//! Budget definitions of one tenant.

use async_trait::async_trait;
use rust_decimal::Decimal;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};

use crate::budget::{Period, Scope, WindowBalance};
use crate::entity::{agent, agent_run, budget, project, team};
use crate::id::{AgentId, BudgetId, ProjectId, RunId, TeamId, TenantId};
use crate::money::{Amount, Currency};
use crate::store::repo::Ctx;
use crate::store::reservations::{balance_of, current_windows, tenant_timezone};
use crate::{Error, Result};

/// What to create a budget with.
///
/// ```
/// use bursar::store::NewBudget;
/// use rust_decimal::Decimal;
/// let tenant_wide = NewBudget::tenant().monthly(Decimal::from(5_000), "USD");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBudget {
    scope: Scope,
    name: Option<String>,
    period: Period,
    limit: Decimal,
    currency: String,
    alert_thresholds: Option<Vec<u32>>,
}

/// The most alert thresholds a budget may have.
pub const MAX_ALERT_THRESHOLDS: usize = 10;
/// The highest alert threshold, in percent of the limit.
pub const MAX_ALERT_PERCENT: u32 = 1_000;

impl NewBudget {
    fn scoped(scope: Scope) -> Self {
        Self {
            scope,
            name: None,
            period: Period::Monthly,
            limit: Decimal::ZERO,
            currency: "USD".into(),
            alert_thresholds: None,
        }
    }

    /// The percentages of the limit whose crossing is announced as a
    /// `budget.threshold_crossed` event, once per window each (default 50,
    /// 80, 100; above 100 for budgets that settlement may overspend; empty
    /// for none).
    #[must_use]
    pub fn alert_thresholds(mut self, percents: impl IntoIterator<Item = u32>) -> Self {
        self.alert_thresholds = Some(percents.into_iter().collect());
        self
    }

    /// A budget on everything spent in the tenant.
    #[must_use]
    pub fn tenant() -> Self {
        Self::scoped(Scope::Tenant)
    }

    /// A budget on one agent's spending.
    #[must_use]
    pub fn agent(id: AgentId) -> Self {
        Self::scoped(Scope::Agent(id))
    }

    /// A budget on a team's spending.
    #[must_use]
    pub fn team(id: TeamId) -> Self {
        Self::scoped(Scope::Team(id))
    }

    /// A budget on a project's spending.
    #[must_use]
    pub fn project(id: ProjectId) -> Self {
        Self::scoped(Scope::Project(id))
    }

    /// A budget on one agent run's spending.
    #[must_use]
    pub fn run(id: RunId) -> Self {
        Self::scoped(Scope::Run(id))
    }

    /// A budget for an arbitrary [`Scope`].
    #[must_use]
    pub fn for_scope(scope: Scope) -> Self {
        Self::scoped(scope)
    }

    /// Limit per `period`.
    #[must_use]
    pub fn limit(mut self, period: Period, limit: Decimal, currency: impl Into<String>) -> Self {
        self.period = period;
        self.limit = limit;
        self.currency = currency.into();
        self
    }

    /// Limit per day (in the tenant's time zone).
    #[must_use]
    pub fn daily(self, limit: Decimal, currency: impl Into<String>) -> Self {
        self.limit(Period::Daily, limit, currency)
    }

    /// Limit per week (Monday to Monday).
    #[must_use]
    pub fn weekly(self, limit: Decimal, currency: impl Into<String>) -> Self {
        self.limit(Period::Weekly, limit, currency)
    }

    /// Limit per calendar month.
    #[must_use]
    pub fn monthly(self, limit: Decimal, currency: impl Into<String>) -> Self {
        self.limit(Period::Monthly, limit, currency)
    }

    /// Limit per calendar year.
    #[must_use]
    pub fn yearly(self, limit: Decimal, currency: impl Into<String>) -> Self {
        self.limit(Period::Yearly, limit, currency)
    }

    /// A limit that never resets.
    #[must_use]
    pub fn lifetime(self, limit: Decimal, currency: impl Into<String>) -> Self {
        self.limit(Period::Lifetime, limit, currency)
    }

    /// A display name (default: derived from scope and period).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

fn scope_kind(scope: Scope) -> budget::ScopeKind {
    match scope {
        Scope::Tenant => budget::ScopeKind::Tenant,
        Scope::Agent(_) => budget::ScopeKind::Agent,
        Scope::Team(_) => budget::ScopeKind::Team,
        Scope::Project(_) => budget::ScopeKind::Project,
        Scope::Run(_) => budget::ScopeKind::Run,
    }
}

/// A budget with the balance of its current window.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct BudgetStatus {
    /// The budget.
    pub budget: budget::Model,
    /// Its current window's balance.
    pub balance: WindowBalance,
}

/// The budget repository of one tenant. Get it from
/// [`TenantScope::budgets`](crate::store::TenantScope::budgets).
#[derive(Debug)]
pub struct Budgets<'a> {
    ctx: Ctx<'a>,
}

/// Checks that the row a scope names exists in `tenant`; another tenant's id
/// is reported exactly like an id that does not exist.
pub(crate) async fn check_scope(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    scope: Scope,
) -> Result<()> {
    let found = match scope {
        Scope::Tenant => true,
        Scope::Agent(id) => agent::Entity::find()
            .filter(agent::Column::TenantId.eq(tenant))
            .filter(agent::Column::Id.eq(id))
            .one(conn)
            .await?
            .is_some(),
        Scope::Team(id) => team::Entity::find()
            .filter(team::Column::TenantId.eq(tenant))
            .filter(team::Column::Id.eq(id))
            .one(conn)
            .await?
            .is_some(),
        Scope::Project(id) => project::Entity::find()
            .filter(project::Column::TenantId.eq(tenant))
            .filter(project::Column::Id.eq(id))
            .one(conn)
            .await?
            .is_some(),
        Scope::Run(id) => agent_run::Entity::find()
            .filter(agent_run::Column::TenantId.eq(tenant))
            .filter(agent_run::Column::Id.eq(id))
            .one(conn)
            .await?
            .is_some(),
    };
    if found {
        Ok(())
    } else {
        let (entity, id) = match scope {
            Scope::Agent(id) => (AgentId::ENTITY, id.to_string()),
            Scope::Team(id) => (TeamId::ENTITY, id.to_string()),
            Scope::Project(id) => (ProjectId::ENTITY, id.to_string()),
            Scope::Run(id) => (RunId::ENTITY, id.to_string()),
            Scope::Tenant => (TenantId::ENTITY, tenant.to_string()),
        };
        Err(Error::not_found(entity, id))
    }
}

impl<'a> Budgets<'a> {
    pub(crate) fn new(ctx: Ctx<'a>) -> Self {
        Self { ctx }
    }

    async fn create_unaudited(&self, new: NewBudget) -> Result<budget::Model> {
        let currency = Currency::from_code(&new.currency)?;
        if new.limit < Decimal::ZERO {
            return Err(Error::invalid(
                "limit",
                format!("must not be negative, got {}", new.limit),
            ));
        }
        let limit = Amount::new(new.limit).map_err(|e| Error::invalid("limit", e))?;
        let thresholds = new
            .alert_thresholds
            .as_ref()
            .map(|t| check_thresholds(t))
            .transpose()?;
        let name = match &new.name {
            Some(name) => crate::validate::validate_name("name", name)?,
            None => format!("{} {} budget", new.scope.kind(), new.period),
        };
        let conn = &self.ctx.db;
        check_scope(conn, self.ctx.tenant, new.scope).await?;
        let now = self.ctx.now();
        let scope_id = match new.scope {
            Scope::Tenant => None,
            Scope::Agent(id) => Some(id.0),
            Scope::Team(id) => Some(id.0),
            Scope::Project(id) => Some(id.0),
            Scope::Run(id) => Some(id.0),
        };
        let row = budget::ActiveModel {
            id: Set(BudgetId::new()),
            tenant_id: Set(self.ctx.tenant),
            name: Set(name),
            scope_kind: Set(scope_kind(new.scope)),
            scope_id: Set(scope_id),
            currency: Set(currency),
            period: Set(new.period),
            limit_amount: Set(limit),
            is_active: Set(true),
            alert_thresholds: Set(thresholds),
            created_at: Set(now),
            updated_at: Set(now),
        };
        Ok(row.insert(conn).await?)
    }

    async fn set_active_unaudited(&self, id: BudgetId, active: bool) -> Result<budget::Model> {
        let current = self.get(id).await?;
        let mut row: budget::ActiveModel = current.into();
        row.is_active = Set(active);
        row.updated_at = Set(self.ctx.now());
        Ok(crate::store::repo::update_owned(&self.ctx.db, row).await?)
    }
}

/// Budgets of one tenant.
#[async_trait]
pub trait BudgetRepository {
    /// Creates a budget. The scope's agent, team, project or run must belong to
    /// this tenant.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a limit that is negative or not storable, an
    /// unknown currency or a bad name; [`Error::NotFound`] when the scope names
    /// a row this tenant does not have; [`Error::Database`].
    async fn create(&self, new: NewBudget) -> Result<budget::Model>;
    /// One budget.
    ///
    /// # Errors
    /// [`Error::NotFound`] when it does not exist in this tenant.
    async fn get(&self, id: BudgetId) -> Result<budget::Model>;
    /// Every budget of the tenant, oldest first.
    ///
    /// # Errors
    /// [`Error::Database`].
    async fn list(&self) -> Result<Vec<budget::Model>>;
    /// Turns a budget off (it no longer applies) or on again.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Database`].
    async fn set_active(&self, id: BudgetId, active: bool) -> Result<budget::Model>;
    /// The budget with its current window's balance (the window is created if
    /// it does not exist yet, with nothing spent).
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Database`].
    async fn status(&self, id: BudgetId) -> Result<BudgetStatus>;
}

#[async_trait]
impl BudgetRepository for Budgets<'_> {
    #[tracing::instrument(level = "debug", name = "bursar.budgets.create", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn create(&self, new: NewBudget) -> Result<budget::Model> {
        crate::audit::audited_write!(
            &self.ctx,
            |ctx| { Budgets::new(ctx).create_unaudited(new).await? },
            |row| crate::audit::AuditEntry::new("budget.created", "budget").resource_id(row.id)
        )
    }

    #[tracing::instrument(level = "debug", name = "bursar.budgets.get", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn get(&self, id: BudgetId) -> Result<budget::Model> {
        budget::Entity::find()
            .filter(budget::Column::TenantId.eq(self.ctx.tenant))
            .filter(budget::Column::Id.eq(id))
            .one(&self.ctx.db)
            .await?
            .ok_or_else(|| Error::not_found(BudgetId::ENTITY, id))
    }

    #[tracing::instrument(level = "debug", name = "bursar.budgets.list", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn list(&self) -> Result<Vec<budget::Model>> {
        Ok(budget::Entity::find()
            .filter(budget::Column::TenantId.eq(self.ctx.tenant))
            .order_by_asc(budget::Column::Id)
            .all(&self.ctx.db)
            .await?)
    }

    #[tracing::instrument(level = "debug", name = "bursar.budgets.set_active", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn set_active(&self, id: BudgetId, active: bool) -> Result<budget::Model> {
        crate::audit::audited_write!(
            &self.ctx,
            |ctx| { Budgets::new(ctx).set_active_unaudited(id, active).await? },
            |row| crate::audit::AuditEntry::new(
                if row.is_active {
                    "budget.enabled"
                } else {
                    "budget.disabled"
                },
                "budget"
            )
            .resource_id(row.id)
        )
    }

    #[tracing::instrument(level = "debug", name = "bursar.budgets.status", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn status(&self, id: BudgetId) -> Result<BudgetStatus> {
        let b = self.get(id).await?;
        let now = self.ctx.now();
        let txn = self.ctx.begin_write().await?;
        let tz = tenant_timezone(&txn, self.ctx.tenant).await?;
        let windows = current_windows(&txn, self.ctx.tenant, vec![b], tz, now, false).await?;
        txn.commit().await?;
        let (b, w) = windows
            .into_iter()
            .next()
            .ok_or_else(|| Error::not_found(BudgetId::ENTITY, id))?;
        let balance = balance_of(&b, &w);
        Ok(BudgetStatus { budget: b, balance })
    }
}

/// Sorts the alert thresholds, refusing more than [`MAX_ALERT_THRESHOLDS`],
/// duplicates, 0 and values above [`MAX_ALERT_PERCENT`].
fn check_thresholds(percents: &[u32]) -> Result<crate::entity::json::AlertThresholds> {
    if percents.len() > MAX_ALERT_THRESHOLDS {
        return Err(Error::invalid(
            "alert_thresholds",
            format!(
                "{} thresholds, at most {MAX_ALERT_THRESHOLDS}",
                percents.len()
            ),
        ));
    }
    let mut sorted = percents.to_vec();
    sorted.sort_unstable();
    for pair in sorted.windows(2) {
        if pair[0] == pair[1] {
            return Err(Error::invalid(
                "alert_thresholds",
                format!("{} is listed twice", pair[0]),
            ));
        }
    }
    if let Some(bad) = sorted.iter().find(|p| **p == 0 || **p > MAX_ALERT_PERCENT) {
        return Err(Error::invalid(
            "alert_thresholds",
            format!("{bad} is not a percentage from 1 to {MAX_ALERT_PERCENT}"),
        ));
    }
    Ok(crate::entity::json::AlertThresholds(sorted))
}
