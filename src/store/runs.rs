//! Agent runs: a unit of agent work with caps (cost, rounds, tokens, a
//! deadline, allowed tools and models) and a kill switch.
//!
//! A run belongs to one agent. Every action that names it — a purchase, a tool
//! call, a metered LLM call — goes through `authorize`, which locks the run
//! row first (see `docs/budgets.md`, "Lock order"), refuses the action when the
//! run is killed (`RUN_KILLED`), over (`RUN_EXPIRED`) or a cap does not admit
//! it (`RUN_LIMIT_EXCEEDED`, naming the cap), and counts an admitted action as
//! one round with a guarded update. The cost cap is a lifetime budget of scope
//! run, created with the run and bound to it by the store: its spending and
//! holds are the run's cost. See `docs/runs.md`.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveEnum, ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::Serialize;

use crate::audit::{AuditEntry, append};
use crate::budget::{Period, Scope};
use crate::codes;
use crate::entity::agent_run::{self, RunCaps, RunStatus};
use crate::entity::audit_log::{AuditActorType, AuditLevel, AuditStatus};
use crate::entity::json::Metadata;
use crate::entity::reservation::{self, ReservationStatus};
use crate::entity::{budget, budget_window};
use crate::id::{AgentId, RunId, TenantId, UserId};
use crate::money::{Amount, Money};
use crate::page::list_page;
use crate::page::{Page, PageRequest};
use crate::policy::{Reason, Request};
use crate::store::repo::{Ctx, finish, retry_contention};
use crate::store::reservations::end_hold_in;
use crate::store::roles::{RoleRepository, Roles, permissions};
use crate::{Error, Result};

/// Longest kill reason, in characters (the width of `agent_runs.kill_reason`).
pub const MAX_KILL_REASON_LEN: usize = 500;
/// Most tools or models a run may list as allowed.
pub const MAX_ALLOWED_ENTRIES: usize = 256;

/// A run to start: its agent and its caps, all optional.
///
/// ```
/// use bursar::id::AgentId;
/// use bursar::money::Money;
/// use bursar::store::NewRun;
/// let run = NewRun::new(AgentId::new())
///     .max_cost(Money::parse("1.00", "USD")?)
///     .max_rounds(5)
///     .max_tokens(100_000)
///     .allowed_tools(["search", "fetch"]);
/// # Ok::<(), bursar::money::MoneyError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct NewRun {
    agent: AgentId,
    description: Option<String>,
    started_by: Option<UserId>,
    max_cost: Option<Money>,
    max_rounds: Option<u32>,
    caps: RunCaps,
}

impl NewRun {
    /// A run of `agent` with no caps.
    #[must_use]
    pub fn new(agent: AgentId) -> Self {
        Self {
            agent,
            description: None,
            started_by: None,
            max_cost: None,
            max_rounds: None,
            caps: RunCaps::default(),
        }
    }

    /// What the run is for.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// The member who started it.
    #[must_use]
    pub fn started_by(mut self, user: UserId) -> Self {
        self.started_by = Some(user);
        self
    }

    /// The most the run may cost, in one currency: a lifetime budget of the
    /// run, created with it.
    #[must_use]
    pub fn max_cost(mut self, cap: Money) -> Self {
        self.max_cost = Some(cap);
        self
    }

    /// The most actions (rounds) the run may take.
    #[must_use]
    pub fn max_rounds(mut self, rounds: u32) -> Self {
        self.max_rounds = Some(rounds);
        self
    }

    /// The most tokens its metered LLM calls may use.
    #[must_use]
    pub fn max_tokens(mut self, tokens: u64) -> Self {
        self.caps.max_tokens = Some(i64::try_from(tokens).unwrap_or(i64::MAX));
        self
    }

    /// The longest the run may last from its start; after that every action
    /// is refused (`RUN_EXPIRED`).
    #[must_use]
    pub fn max_duration(mut self, duration: std::time::Duration) -> Self {
        self.caps.max_duration_secs = Some(duration.as_secs());
        self
    }

    /// After this instant every action is refused (`RUN_EXPIRED`).
    #[must_use]
    pub fn deadline(mut self, at: DateTime<Utc>) -> Self {
        self.caps.deadline = Some(at);
        self
    }

    /// The only tools the run may call.
    #[must_use]
    pub fn allowed_tools(mut self, tools: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.caps.allowed_tools = Some(tools.into_iter().map(Into::into).collect());
        self
    }

    /// The only models the run may use.
    #[must_use]
    pub fn allowed_models(mut self, models: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.caps.allowed_models = Some(models.into_iter().map(Into::into).collect());
        self
    }
}

/// A run with its counters.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunState {
    /// The run as stored (status, caps, rounds, tokens).
    pub run: agent_run::Model,
    /// What its cost cap's budget has spent (settled), if it has a cost cap.
    pub cost_spent: Decimal,
    /// What it holds for actions not settled yet.
    pub cost_held: Decimal,
}

/// The runs of one tenant. Get it from
/// [`TenantScope::runs`](crate::store::TenantScope::runs).
#[derive(Debug)]
pub struct Runs<'a> {
    ctx: Ctx<'a>,
}

fn check_list(field: &str, items: Option<&Vec<String>>) -> Result<()> {
    let Some(items) = items else { return Ok(()) };
    if items.len() > MAX_ALLOWED_ENTRIES {
        return Err(Error::invalid(
            field,
            format!(
                "lists {} entries; at most {MAX_ALLOWED_ENTRIES} are allowed",
                items.len()
            ),
        ));
    }
    for (i, item) in items.iter().enumerate() {
        if item.trim().is_empty() || item.chars().count() > 100 {
            return Err(Error::invalid(
                format!("{field}[{i}]"),
                format!("{item:?} must be 1 to 100 characters and not blank"),
            ));
        }
    }
    Ok(())
}

impl<'a> Runs<'a> {
    pub(crate) fn new(ctx: Ctx<'a>) -> Self {
        Self { ctx }
    }

    /// Starts a run of an active agent. With a cost cap, a lifetime budget of
    /// scope run is created in the same transaction.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an agent that is not this tenant's;
    /// [`Error::Invalid`] for a cap that is zero, negative or out of bounds, a
    /// deadline not after now, or a blank or over-long tool or model name;
    /// [`Error::Database`].
    #[tracing::instrument(level = "info", name = "bursar.runs.start", skip_all, fields(tenant = %self.ctx.tenant))]
    pub async fn start(&self, new: NewRun) -> Result<agent_run::Model> {
        if let Some(cap) = &new.max_cost {
            if cap.amount() <= Decimal::ZERO {
                return Err(Error::invalid(
                    "max_cost",
                    format!("must be positive, got {}", cap.amount()),
                ));
            }
        }
        if new.max_rounds == Some(0) {
            return Err(Error::invalid("max_rounds", "must be at least 1, got 0"));
        }
        if new.caps.max_duration_secs == Some(0) {
            return Err(Error::invalid(
                "max_duration",
                "must be at least 1 second, got 0",
            ));
        }
        if new.caps.max_tokens == Some(0) {
            return Err(Error::invalid("max_tokens", "must be at least 1, got 0"));
        }
        let now = self.ctx.now();
        if let Some(deadline) = new.caps.deadline {
            if deadline <= now {
                return Err(Error::invalid(
                    "deadline",
                    format!("{deadline} is not after now ({now})"),
                ));
            }
        }
        check_list("allowed_tools", new.caps.allowed_tools.as_ref())?;
        check_list("allowed_models", new.caps.allowed_models.as_ref())?;
        if let Some(d) = &new.description {
            crate::validate::check_width("description", d, 2_000)?;
        }
        let agent = {
            use crate::store::agents::AgentRepository;
            crate::store::agents::Agents::new(self.ctx.reborrow())
                .get(new.agent)
                .await?
        };
        let tenant = crate::entity::tenant::Entity::find_by_id(self.ctx.tenant)
            .one(&self.ctx.db)
            .await?
            .ok_or_else(|| Error::not_found(TenantId::ENTITY, self.ctx.tenant))?;
        let currency = new
            .max_cost
            .map_or(tenant.default_currency, |m| m.currency());
        let max_cost = new
            .max_cost
            .map(|m| Amount::new(m.amount()).map_err(|e| Error::invalid("max_cost", e)))
            .transpose()?;
        let max_rounds = new
            .max_rounds
            .map(|r| i32::try_from(r).map_err(|_| Error::invalid("max_rounds", "is too large")))
            .transpose()?;
        let txn = self.ctx.begin_write().await?;
        let result = async {
            let id = RunId::new();
            let run = agent_run::ActiveModel {
                id: Set(id),
                tenant_id: Set(self.ctx.tenant),
                agent_id: Set(Some(agent.id)),
                started_by: Set(new.started_by),
                description: Set(new.description.clone()),
                status: Set(RunStatus::Active),
                currency: Set(currency),
                max_cost: Set(max_cost),
                max_rounds: Set(max_rounds),
                caps: Set(new.caps.clone()),
                cost: Set(Amount::ZERO),
                total_tokens: Set(0),
                rounds: Set(0),
                started_at: Set(now),
                completed_at: Set(None),
                killed_at: Set(None),
                killed_by: Set(None),
                kill_reason: Set(None),
                metadata: Set(Metadata::default()),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(&txn)
            .await?;
            if let Some(cap) = new.max_cost {
                // The cost cap: a lifetime budget bound to this run by the
                // store (the caller never names it).
                use crate::store::budgets::BudgetRepository;
                crate::store::budgets::Budgets::new(Ctx::new(
                    &txn,
                    self.ctx.tenant,
                    self.ctx.clock,
                ))
                .create(
                    crate::store::budgets::NewBudget::for_scope(Scope::Run(id)).limit(
                        Period::Lifetime,
                        cap.amount(),
                        cap.currency().code(),
                    ),
                )
                .await?;
            }
            append(
                &txn,
                self.ctx.tenant,
                AuditEntry::new("run.started", "agent_run")
                    .actor(AuditActorType::Agent, Some(agent.id.as_uuid()))
                    .resource_id(id),
                now,
            )
            .await?;
            Ok(run)
        }
        .await;
        finish(txn, result).await
    }

    /// A run with its counters: rounds and tokens from the run, cost spent
    /// and held from its cost cap's budget.
    ///
    /// # Errors
    /// [`Error::NotFound`] when it is not this tenant's; [`Error::Database`].
    #[tracing::instrument(level = "debug", name = "bursar.runs.get", skip_all, fields(tenant = %self.ctx.tenant))]
    pub async fn get(&self, id: RunId) -> Result<RunState> {
        let run = agent_run::Entity::find()
            .filter(agent_run::Column::TenantId.eq(self.ctx.tenant))
            .filter(agent_run::Column::Id.eq(id))
            .one(&self.ctx.db)
            .await?
            .ok_or_else(|| Error::not_found(RunId::ENTITY, id))?;
        let (cost_spent, cost_held) = run_cost(&self.ctx.db, self.ctx.tenant, id).await?;
        Ok(RunState {
            run,
            cost_spent,
            cost_held,
        })
    }

    /// Runs, oldest first, of one agent (or all), filtered by status
    /// (`active`, `paused`, `completed`, `failed`, `killed`) and creation time.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad page or status; [`Error::Database`].
    #[tracing::instrument(level = "debug", name = "bursar.runs.list", skip_all, fields(tenant = %self.ctx.tenant))]
    pub async fn list(
        &self,
        agent: Option<AgentId>,
        page: PageRequest,
    ) -> Result<Page<agent_run::Model>> {
        let mut query =
            agent_run::Entity::find().filter(agent_run::Column::TenantId.eq(self.ctx.tenant));
        if let Some(agent) = agent {
            query = query.filter(agent_run::Column::AgentId.eq(agent));
        }
        if let Some(status) = page.status_filter() {
            let status: RunStatus = crate::store::status::parse_status(status)?;
            query = query.filter(agent_run::Column::Status.eq(status));
        }
        list_page(
            &self.ctx.db,
            query,
            agent_run::Column::CreatedAt,
            agent_run::Column::Id,
            &page,
        )
        .await
    }

    /// The kill switch: the run becomes `killed`, every reservation it holds
    /// is released in the same transaction, and an audit entry records who
    /// killed it and why. From then on every action naming it is rejected
    /// with `RUN_KILLED`. Killing a killed run again changes nothing.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a run or member not of this tenant;
    /// [`Error::Forbidden`] without `runs:write`; [`Error::Conflict`] for a
    /// run that already completed or failed; [`Error::Invalid`] for a blank or
    /// over-long reason; [`Error::Database`].
    #[tracing::instrument(level = "info", name = "bursar.runs.kill", skip_all, fields(tenant = %self.ctx.tenant, run = %id))]
    pub async fn kill(&self, id: RunId, by: UserId, reason: &str) -> Result<agent_run::Model> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_KILL_REASON_LEN {
            return Err(Error::invalid(
                "reason",
                format!("must be 1 to {MAX_KILL_REASON_LEN} characters and not blank"),
            ));
        }
        self.require_writer(by).await?;
        let now = self.ctx.now();
        retry_contention(|| async {
            let txn = self.ctx.begin_write().await?;
            let result = self.kill_in(&txn, id, by, reason, now).await;
            finish(txn, result).await
        })
        .await
    }

    async fn kill_in(
        &self,
        txn: &DatabaseTransaction,
        id: RunId,
        by: UserId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<agent_run::Model> {
        let tenant = self.ctx.tenant;
        // Lock order: the run row, then the reservations it holds (ascending
        // id), then their windows, then the audit chain.
        let run = lock(txn, tenant, id).await?;
        match run.status {
            RunStatus::Killed => return Ok(run),
            RunStatus::Completed | RunStatus::Failed => {
                return Err(Error::conflict(
                    "agent_run",
                    format!(
                        "run {id} is {}; only an active or paused run can be killed",
                        run.status.to_value()
                    ),
                ));
            }
            RunStatus::Active | RunStatus::Paused => {}
        }
        let held: Vec<reservation::Model> = reservation::Entity::find()
            .filter(reservation::Column::TenantId.eq(tenant))
            .filter(reservation::Column::RunId.eq(id))
            .filter(reservation::Column::Status.eq(ReservationStatus::Held))
            .order_by_asc(reservation::Column::Id)
            .lock_exclusive()
            .all(txn)
            .await?;
        for r in &held {
            end_hold_in(txn, tenant, r.id, ReservationStatus::Released, now).await?;
        }
        let mut row: agent_run::ActiveModel = run.into();
        row.status = Set(RunStatus::Killed);
        row.killed_at = Set(Some(now));
        row.killed_by = Set(Some(by.to_string()));
        row.kill_reason = Set(Some(reason.to_owned()));
        row.completed_at = Set(Some(now));
        row.updated_at = Set(now);
        let run = crate::store::repo::update_owned(txn, row).await?;
        let event = crate::events::NewEvent::new(
            crate::events::types::RUN_KILLED,
            "agent_run",
            Some(id.as_uuid()),
            &crate::events::RunKilledPayload {
                run_id: id,
                agent_id: run.agent_id,
                killed_by: by,
                reason: reason.to_owned(),
                released: held.iter().map(|r| r.id).collect(),
                killed_at: now,
            },
        )?;
        crate::events::emit(txn, tenant, event, now).await?;
        append(
            txn,
            tenant,
            AuditEntry::new("run.killed", "agent_run")
                .actor(AuditActorType::User, Some(by.as_uuid()))
                .resource_id(id)
                .level(AuditLevel::Warn)
                .status(AuditStatus::Success)
                .message(format!("killed: {reason}; {} hold(s) released", held.len())),
            now,
        )
        .await?;
        Ok(run)
    }

    /// Marks an active run completed: no further action may name it
    /// (`RUN_EXPIRED`). Holds it still has stay until captured, released or
    /// expired. Completing a completed run changes nothing.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Conflict`] for a killed or failed run;
    /// [`Error::Database`].
    #[tracing::instrument(level = "info", name = "bursar.runs.complete", skip_all, fields(tenant = %self.ctx.tenant, run = %id))]
    pub async fn complete(&self, id: RunId) -> Result<agent_run::Model> {
        let now = self.ctx.now();
        retry_contention(|| async {
            let txn = self.ctx.begin_write().await?;
            let result = async {
                let run = lock(&txn, self.ctx.tenant, id).await?;
                match run.status {
                    RunStatus::Completed => return Ok(run),
                    RunStatus::Active | RunStatus::Paused => {}
                    other => {
                        return Err(Error::conflict(
                            "agent_run",
                            format!("run {id} is {}; it cannot be completed", other.to_value()),
                        ));
                    }
                }
                let mut row: agent_run::ActiveModel = run.into();
                row.status = Set(RunStatus::Completed);
                row.completed_at = Set(Some(now));
                row.updated_at = Set(now);
                let run = crate::store::repo::update_owned(&txn, row).await?;
                append(
                    &txn,
                    self.ctx.tenant,
                    AuditEntry::new("run.completed", "agent_run").resource_id(id),
                    now,
                )
                .await?;
                Ok(run)
            }
            .await;
            finish(txn, result).await
        })
        .await
    }

    async fn require_writer(&self, user: UserId) -> Result<()> {
        use crate::entity::tenant_member::{self, MemberStatus};
        let member = tenant_member::Entity::find()
            .filter(tenant_member::Column::TenantId.eq(self.ctx.tenant))
            .filter(tenant_member::Column::UserId.eq(user))
            .one(&self.ctx.db)
            .await?
            .filter(|m| m.status == MemberStatus::Active);
        if member.is_none() {
            return Err(Error::not_found(UserId::ENTITY, user));
        }
        if !Roles::new(self.ctx.reborrow())
            .can(user, permissions::RUNS_WRITE)
            .await?
        {
            return Err(Error::Forbidden {
                user: user.to_string(),
                permission: permissions::RUNS_WRITE,
            });
        }
        Ok(())
    }
}

async fn lock(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    id: RunId,
) -> Result<agent_run::Model> {
    agent_run::Entity::find()
        .filter(agent_run::Column::TenantId.eq(tenant))
        .filter(agent_run::Column::Id.eq(id))
        .lock_exclusive()
        .all(conn)
        .await
        .map(crate::store::repo::first)?
        .ok_or_else(|| Error::not_found(RunId::ENTITY, id))
}

/// `(spent, held)` of a run's cost-cap budget (zero without one).
pub(crate) async fn run_cost(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    run: RunId,
) -> Result<(Decimal, Decimal)> {
    let budgets: Vec<budget::Model> = budget::Entity::find()
        .filter(budget::Column::TenantId.eq(tenant))
        .filter(budget::Column::ScopeKind.eq(budget::ScopeKind::Run))
        .filter(budget::Column::ScopeId.eq(run.as_uuid()))
        .all(conn)
        .await?;
    let mut spent = Decimal::ZERO;
    let mut held = Decimal::ZERO;
    for b in budgets {
        let windows = budget_window::Entity::find()
            .filter(budget_window::Column::TenantId.eq(tenant))
            .filter(budget_window::Column::BudgetId.eq(b.id))
            .all(conn)
            .await?;
        for w in windows {
            spent += w.spent.get();
            held += w.reserved.get();
        }
    }
    Ok((spent, held))
}

fn refuse(code: &'static str, message: String) -> Option<Reason> {
    Some(Reason::new(code, message))
}

/// Why a run does not admit an action, if it does not: killed, over (status
/// or deadline), or a cap (allowed tools / models, rounds, tokens) that the
/// action would pass. `tokens` is what the action may use (a metered call's
/// input plus its output bound; zero otherwise). The cost cap is the run's
/// budget and is checked with the other budgets.
pub(crate) fn refusal(
    run: &agent_run::Model,
    request: &Request,
    tokens: u64,
    now: DateTime<Utc>,
) -> Option<Reason> {
    match run.status {
        RunStatus::Killed => {
            return refuse(
                codes::RUN_KILLED,
                format!(
                    "run {} was killed: {}",
                    run.id,
                    run.kill_reason.as_deref().unwrap_or("no reason given")
                ),
            );
        }
        RunStatus::Active => {}
        other => {
            return refuse(
                codes::RUN_EXPIRED,
                format!(
                    "run {} is {} and admits no more actions",
                    run.id,
                    other.to_value()
                ),
            );
        }
    }
    // The deadline is the earlier of the fixed one and start + max duration.
    let by_duration = run.caps.max_duration_secs.map(|secs| {
        run.started_at + chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX))
    });
    if let Some(deadline) = [run.caps.deadline, by_duration].into_iter().flatten().min() {
        if now >= deadline {
            return refuse(
                codes::RUN_EXPIRED,
                format!("run {} passed its deadline of {deadline}", run.id),
            );
        }
    }
    let listed = |list: &Option<Vec<String>>, name: &Option<String>| match (list, name) {
        (Some(list), Some(name)) => list.iter().any(|t| t.eq_ignore_ascii_case(name.trim())),
        _ => true,
    };
    if !listed(&run.caps.allowed_tools, &request.tool) {
        return refuse(
            codes::RUN_LIMIT_EXCEEDED,
            format!(
                "cap allowed_tools: tool {:?} is not allowed in run {}",
                request.tool.as_deref().unwrap_or_default(),
                run.id
            ),
        );
    }
    if !listed(&run.caps.allowed_models, &request.model) {
        return refuse(
            codes::RUN_LIMIT_EXCEEDED,
            format!(
                "cap allowed_models: model {:?} is not allowed in run {}",
                request.model.as_deref().unwrap_or_default(),
                run.id
            ),
        );
    }
    if let Some(max) = run.max_rounds {
        if run.rounds >= max {
            return refuse(
                codes::RUN_LIMIT_EXCEEDED,
                format!("cap max_rounds: run {} used all {max} rounds", run.id),
            );
        }
    }
    if let Some(max) = run.caps.max_tokens {
        let wanted = run
            .total_tokens
            .saturating_add(i64::try_from(tokens).unwrap_or(i64::MAX));
        if (tokens > 0 && wanted > max) || run.total_tokens >= max {
            return refuse(
                codes::RUN_LIMIT_EXCEEDED,
                format!(
                    "cap max_tokens: run {} has used {} of {max} tokens; this call may use {tokens}",
                    run.id, run.total_tokens
                ),
            );
        }
    }
    None
}

/// Gives back the round that `authorize` counted when it locked the run
/// (`rounds + 1`, in the same statement as the lock) for an action that was
/// then rejected: a guarded update from the counted value back to `rounds`.
pub(crate) async fn uncount_round(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    run: RunId,
    rounds: i32,
) -> Result<()> {
    let result = agent_run::Entity::update_many()
        .col_expr(agent_run::Column::Rounds, Expr::value(rounds))
        .filter(agent_run::Column::TenantId.eq(tenant))
        .filter(agent_run::Column::Id.eq(run))
        .filter(agent_run::Column::Rounds.eq(rounds + 1))
        .exec(conn)
        .await?;
    if result.rows_affected != 1 {
        return Err(Error::conflict(
            "agent_run",
            format!("run {run} changed while its round was being given back"),
        ));
    }
    Ok(())
}

/// Adds a finished call's tokens and cost to a run, as read in `run`: one
/// guarded update (`… WHERE total_tokens = ? AND cost = ?`, the values read).
/// When the run changed since it was read (another call of the run finished
/// in between), the run is locked, read again and counted on what it holds
/// then. Either way the update takes the run's row lock, before the caller
/// goes on to the reservation and its windows (the lock order of
/// docs/budgets.md).
pub(crate) async fn count_usage(
    conn: &impl ConnectionTrait,
    run: &agent_run::Model,
    tokens: u64,
    cost: Amount,
    now: DateTime<Utc>,
) -> Result<()> {
    if add_usage(conn, run, tokens, cost, now).await? {
        return Ok(());
    }
    let current = lock(conn, run.tenant_id, run.id).await?;
    if add_usage(conn, &current, tokens, cost, now).await? {
        return Ok(());
    }
    Err(Error::conflict(
        "agent_run",
        format!("run {} changed while its usage was being counted", run.id),
    ))
}

/// The guarded update of [`count_usage`]: whether the run still held what
/// `run` says.
async fn add_usage(
    conn: &impl ConnectionTrait,
    run: &agent_run::Model,
    tokens: u64,
    cost: Amount,
    now: DateTime<Utc>,
) -> Result<bool> {
    let total = run
        .total_tokens
        .saturating_add(i64::try_from(tokens).unwrap_or(i64::MAX));
    let spent = run
        .cost
        .checked_add(cost)
        .map_err(|e| Error::invalid("cost", e))?;
    let result = agent_run::Entity::update_many()
        .col_expr(agent_run::Column::TotalTokens, Expr::value(total))
        .col_expr(agent_run::Column::Cost, Expr::value(spent))
        .col_expr(agent_run::Column::UpdatedAt, Expr::value(now))
        .filter(agent_run::Column::TenantId.eq(run.tenant_id))
        .filter(agent_run::Column::Id.eq(run.id))
        .filter(agent_run::Column::TotalTokens.eq(run.total_tokens))
        .filter(agent_run::Column::Cost.eq(run.cost))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}
