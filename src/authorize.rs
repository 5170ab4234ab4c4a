//! The one authorize flow: load → evaluate (pure) → reserve (atomic) → record,
//! in one database transaction.
//!
//! See [`TenantScope::authorize`](crate::store::TenantScope::authorize).

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use sea_orm::sea_query::{Expr, ExprTrait, LockType};
use sea_orm::{
    ActiveEnum, ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait,
    QueryFilter, QuerySelect, Set,
};
use serde::Serialize;

use crate::audit::{AuditEntry, writes_then_append};
use crate::budget::Shortfall;
use crate::codes;
use crate::entity::approval_request::{self, ApprovalStatus, ApprovalSubjectKind};
use crate::entity::audit_log::{AuditActorType, AuditStatus};
use crate::entity::blocked_attempt;
use crate::entity::json::{Metadata, ReasonList};
use crate::entity::purchase_intent::{self, PurchaseIntentStatus};
use crate::entity::{
    agent, agent::AgentStatus, agent_run, budget, budget_window, reservation, tenant,
};
use crate::id::{
    AgentId, ApprovalRequestId, BlockedAttemptId, PurchaseIntentId, ReservationId, TenantId,
};
use crate::money::{Amount, Currency, Money};
use crate::policy::{BudgetDetail, Decision, Facts, Outcome, Reason, Request, evaluate};
use crate::store::merchants::{hold_seen, is_known_vendor, normalized_name};
use crate::store::policies::{Policies, PolicyCache};
use crate::store::repo::{Ctx, Deferred};
use crate::store::reservations::{
    Inside, ReserveOutcome, ReserveRequest, balance_of, budgets_and_windows, reserve_with,
};
use crate::{Error, Result};

pub use crate::store::tenants::{DEFAULT_APPROVAL_TTL, DEFAULT_RESERVATION_TTL};

/// What [`TenantScope::authorize`](crate::store::TenantScope::authorize) decided
/// and recorded.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Authorization {
    /// Approved, pending approval, or rejected.
    pub outcome: Outcome,
    /// Why: every deny reason of a rejection, every approval reason of a
    /// pending approval (empty for a plain approval).
    pub reasons: Vec<Reason>,
    /// The purchase intent recorded for the request.
    pub intent: purchase_intent::Model,
    /// The hold on the budgets: for an approval, until capture or expiry; for
    /// a pending approval, until the approval's expiry.
    pub reservation: Option<reservation::Model>,
    /// The approval request, for a pending approval.
    pub approval: Option<approval_request::Model>,
    /// Whether this is the first call's result returned again for a repeated
    /// idempotency key (nothing was written this time).
    pub replayed: bool,
}

impl Authorization {
    /// The reservation to capture or release: only an approved request has
    /// one. A pending approval's hold (in [`Authorization::reservation`]) is
    /// not the agent's to spend until the approval approves it.
    ///
    /// # Errors
    /// [`Error::Conflict`] when the request was rejected (it holds nothing) or
    /// is pending approval (its hold cannot be captured yet), naming the state.
    pub fn reservation_id(&self) -> Result<ReservationId> {
        match (self.outcome, &self.reservation) {
            (Outcome::Approved, Some(r)) => Ok(r.id),
            (Outcome::Approved, None) => Err(Error::conflict(
                "purchase_intent",
                format!(
                    "purchase intent {} was approved without a cost and holds nothing",
                    self.intent.id
                ),
            )),
            (Outcome::PendingApproval, _) => Err(Error::conflict(
                "purchase_intent",
                format!(
                    "purchase intent {} is pending approval; its hold can be captured once approval request {} approves it",
                    self.intent.id,
                    self.approval
                        .as_ref()
                        .map_or_else(|| "?".to_owned(), |a| a.id.to_string())
                ),
            )),
            _ => Err(Error::conflict(
                "purchase_intent",
                format!(
                    "purchase intent {} was rejected and holds no reservation",
                    self.intent.id
                ),
            )),
        }
    }

    /// The reason codes, in order.
    pub fn codes(&self) -> impl Iterator<Item = &str> {
        self.reasons.iter().map(Reason::code)
    }

    /// Whether the request was approved.
    #[must_use]
    pub fn is_approved(&self) -> bool {
        self.outcome == Outcome::Approved
    }
}

/// Runs inside `authorize`'s transaction just before it commits. Returning an
/// error rolls back everything `authorize` wrote, so a host can make its own
/// step (issuing a card, writing its own rows through `txn`) part of the same
/// all-or-nothing unit.
#[async_trait]
pub trait AuthorizeHook: Send + Sync {
    /// Called with the result about to be committed.
    ///
    /// # Errors
    /// Any error aborts the authorization; it is returned to the caller.
    async fn before_commit(
        &self,
        authorization: &Authorization,
        txn: &DatabaseTransaction,
    ) -> Result<()>;
}

/// The hook that does nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHook;

#[async_trait]
impl AuthorizeHook for NoHook {
    async fn before_commit(&self, _: &Authorization, _: &DatabaseTransaction) -> Result<()> {
        Ok(())
    }
}

/// The texts `authorize` stores fit their columns: the merchant name (or the
/// model or tool standing in for it) and domain, and the idempotency key.
fn stored_widths(request: &Request) -> Result<()> {
    use crate::store::merchants::MAX_MERCHANT_LEN;
    use crate::validate::check_width;
    match &request.merchant {
        Some(m) => {
            check_width("merchant.name", &m.name, MAX_MERCHANT_LEN)?;
            if let Some(d) = &m.domain {
                check_width("merchant.domain", d, MAX_MERCHANT_LEN)?;
            }
        }
        None => {
            if let Some(model) = &request.model {
                check_width("model", model, MAX_MERCHANT_LEN)?;
            } else if let Some(tool) = &request.tool {
                check_width("tool", tool, MAX_MERCHANT_LEN)?;
            }
        }
    }
    if let Some(key) = &request.idempotency_key {
        check_width(
            "idempotency_key",
            key,
            crate::store::reservations::MAX_IDEMPOTENCY_KEY_LEN,
        )?;
    }
    Ok(())
}

fn shortfall_reason(s: &Shortfall, currency: Currency) -> Reason {
    let message = if s.code == codes::RUN_LIMIT_EXCEEDED {
        format!(
            "cap max_cost: the run has {} {currency} left of its {} {currency} cost cap",
            s.remaining.normalize(),
            s.limit.normalize()
        )
    } else {
        format!(
            "the {} budget {} has {} {currency} left of its {} {currency} limit",
            s.period, s.budget_id, s.remaining, s.limit
        )
    };
    Reason::new(s.code, message).with_budget(BudgetDetail {
        budget_id: s.budget_id,
        period: s.period,
        currency,
        limit: s.limit,
        remaining: s.remaining,
    })
}

/// What an intent records as its merchant: the merchant's name, else the
/// model, else the tool.
fn merchant_label(request: &Request) -> String {
    request
        .merchant
        .as_ref()
        .map(|m| m.name.clone())
        .or_else(|| request.model.clone())
        .or_else(|| request.tool.clone())
        .unwrap_or_default()
}

fn mismatch_reason(s: &Shortfall, currency: Currency) -> Reason {
    Reason::new(
        s.code,
        format!(
            "the {} budget {} is kept in another currency and cannot evaluate an amount in {currency}",
            s.period, s.budget_id
        ),
    )
    .with_undetermined(true)
}

fn ttl(secs: Option<u32>, default: Duration) -> Duration {
    secs.map_or(default, |s| Duration::seconds(i64::from(s)))
}

/// What metering adds to a request's flow.
#[derive(Clone, Debug, Default)]
pub(crate) struct Extra {
    /// Tokens the call may use, checked against its run's token cap.
    pub(crate) tokens: u64,
    /// A refusal decided before any policy runs (e.g. no price for the model).
    pub(crate) refusal: Option<Reason>,
    /// Made with the tenant's own provider key: it holds and spends nothing
    /// on money budgets when the tenant setting `byok_exempt_from_budgets` is
    /// on.
    pub(crate) byok: bool,
    /// A metered call not priced yet: the claim reads the model's price in
    /// force with the tenant row and prices the request before anything
    /// else looks at it (`refusal` is then set when it cannot be metered).
    pub(crate) pricing: Option<crate::store::meter::Pricing>,
}

/// Whole microseconds, for span fields.
fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Locks a run for an agent's action by counting the action as one of its
/// rounds, in one statement: `UPDATE agent_runs SET rounds = rounds + 1,
/// updated_at = now WHERE tenant_id = ? AND id = ? AND agent_id = ?
/// RETURNING *`. The row stays locked until the transaction ends, so the
/// count cannot overshoot; an action that is then rejected gives its round
/// back ([`crate::store::runs::uncount_round`]). Returns the run with
/// `rounds` as it was before this action, which is what its caps are checked
/// against. A run of another agent (or tenant) is reported exactly like a
/// missing one, and is not touched.
async fn lock_run(
    txn: &DatabaseTransaction,
    tenant: TenantId,
    run: crate::id::RunId,
    agent: crate::id::AgentId,
    now: DateTime<Utc>,
) -> Result<crate::entity::agent_run::Model> {
    let mut counted = agent_run::Entity::update_many()
        .col_expr(
            agent_run::Column::Rounds,
            Expr::col(agent_run::Column::Rounds).add(1),
        )
        .col_expr(agent_run::Column::UpdatedAt, Expr::value(now))
        .filter(agent_run::Column::TenantId.eq(tenant))
        .filter(agent_run::Column::Id.eq(run))
        .filter(agent_run::Column::AgentId.eq(agent))
        .exec_with_returning(txn)
        .await?;
    let mut before = counted
        .pop()
        .ok_or_else(|| Error::not_found(crate::id::RunId::ENTITY, run))?;
    before.rounds -= 1;
    Ok(before)
}

/// What [`Flow::claim`] read and wrote: the tenant, the agent (if it exists),
/// the locked run, the money and the intent, not yet recorded.
struct Claim {
    now: DateTime<Utc>,
    tz: chrono_tz::Tz,
    tenant_row: tenant::Model,
    /// The stamp of the tenant's policies, read with its row.
    policy_stamp: crate::store::policies::Stamp,
    /// The tenant's merchant of the request's name, read with its row
    /// (`None` when unknown, or when the request names no merchant).
    known_merchant: Option<crate::entity::merchant::Model>,
    cost: Option<(Decimal, Currency)>,
    amount: Decimal,
    currency: Currency,
    merchant_name: String,
    claimed_agent: AgentId,
    agent: Option<agent::Model>,
    run: Option<agent_run::Model>,
    intent: purchase_intent::Model,
}

/// What [`Flow::load_facts`] found: the compiled policies, the budgets in
/// another currency, the locked windows and the facts the policies see.
struct Loaded {
    policies: std::sync::Arc<crate::policy::CompiledPolicies>,
    mismatched: Vec<Shortfall>,
    windows: Vec<(budget::Model, budget_window::Model)>,
    facts: Facts,
}

/// Step 2, refuse early: a deactivated tenant, an unknown or inactive agent,
/// metering's own refusal, then the run's caps and state and the tenant's
/// rule that every action names a run. Nothing here reads the database.
fn early_refusal(
    tenant: TenantId,
    claim: &Claim,
    request: &Request,
    extra: &Extra,
) -> Option<Reason> {
    // An unknown or inactive agent is refused before any policy runs.
    let refusal = match &claim.agent {
        // A deactivated tenant's agents may not act at all.
        _ if !claim.tenant_row.is_active => Some(Reason::new(
            codes::TENANT_INACTIVE,
            format!("tenant {tenant} is deactivated"),
        )),
        None => Some(Reason::new(
            codes::AGENT_NOT_FOUND,
            format!(
                "agent {} does not exist in this tenant",
                claim.claimed_agent
            ),
        )),
        Some(a) if a.status != AgentStatus::Active => Some(Reason::new(
            codes::AGENT_INACTIVE,
            format!("agent {} is {} and may not act", a.id, a.status.to_value()),
        )),
        Some(_) => extra.refusal.clone(),
    };
    if refusal.is_some() {
        return refusal;
    }
    // The run's own caps and state come next, then the tenant's rule
    // that every action names a run.
    match &claim.run {
        Some(run) => crate::store::runs::refusal(run, request, extra.tokens, claim.now),
        None if claim.tenant_row.settings.require_run && claim.agent.is_some() => {
            Some(Reason::new(
                codes::RUN_REQUIRED,
                "this tenant requires every agent action to name an active run",
            ))
        }
        None => None,
    }
}

/// The flow, inside an open write transaction.
pub(crate) struct Flow<'a> {
    pub(crate) txn: &'a DatabaseTransaction,
    pub(crate) tenant: TenantId,
    pub(crate) clock: &'a dyn crate::clock::Clock,
    pub(crate) cache: &'a PolicyCache,
}

impl Flow<'_> {
    fn ctx(&self) -> Ctx<'_> {
        Ctx::new(self.txn, self.tenant, self.clock)
    }

    /// `request` and `extra` with a metered call priced: the model's price in
    /// force read now, in this transaction (the others are returned as
    /// they are).
    pub(crate) async fn priced(
        &self,
        request: &Request,
        extra: &Extra,
    ) -> Result<(Request, Extra)> {
        let (mut request, mut extra) = (request.clone(), extra.clone());
        if let Some(pricing) = extra.pricing.take() {
            extra.refusal = pricing
                .read_and_apply(self.txn, self.tenant, &mut request, self.clock.now())
                .await?;
        }
        Ok((request, extra))
    }

    /// An intent already recorded for this idempotency key, returned as the
    /// first result.
    pub(crate) async fn replay(
        &self,
        key: &str,
        request: &Request,
    ) -> Result<Option<Authorization>> {
        let Some(intent) = purchase_intent::Entity::find()
            .filter(purchase_intent::Column::TenantId.eq(self.tenant))
            .filter(purchase_intent::Column::IdempotencyKey.eq(key))
            .all(self.txn)
            .await
            .map(crate::store::repo::first)?
        else {
            return Ok(None);
        };
        // A replay is the same request again: same money, merchant (name and
        // domain), run and (when the first call's agent exists) agent. The
        // conflict says no more than that: a key never reveals another
        // request's merchant or amount.
        let same_money = match request.money() {
            Some((amount, currency)) => {
                intent.amount.get() == amount && intent.currency == currency
            }
            None => intent.amount.is_zero(),
        } && intent.action_kind == request.action.to_string();
        let same_agent = intent
            .agent_id
            .is_none_or(|a| a == request.principal.agent_id);
        let same_merchant = merchant_label(request) == intent.merchant_name
            && request.merchant.as_ref().and_then(|m| m.domain.as_deref())
                == intent.merchant_domain.as_deref();
        let same_run = intent.agent_id.is_none() || intent.run_id == request.principal.run_id;
        if !(same_money && same_agent && same_merchant && same_run) {
            return Err(Error::conflict(
                "purchase_intent",
                format!("idempotency key {key:?} was first used for a different request"),
            ));
        }
        let outcome = match intent.status {
            PurchaseIntentStatus::Approved => Outcome::Approved,
            PurchaseIntentStatus::PendingApproval => Outcome::PendingApproval,
            _ => Outcome::Rejected,
        };
        let reservation = match intent.reservation_id {
            Some(id) => reservation::Entity::find()
                .filter(reservation::Column::TenantId.eq(self.tenant))
                .filter(reservation::Column::Id.eq(id))
                .all(self.txn)
                .await
                .map(crate::store::repo::first)?,
            None => None,
        };
        let approval = match intent.approval_request_id {
            Some(id) => approval_request::Entity::find()
                .filter(approval_request::Column::TenantId.eq(self.tenant))
                .filter(approval_request::Column::Id.eq(id))
                .all(self.txn)
                .await
                .map(crate::store::repo::first)?,
            None => None,
        };
        Ok(Some(Authorization {
            outcome,
            reasons: intent.reasons.0.clone(),
            intent,
            reservation,
            approval,
            replayed: true,
        }))
    }

    /// Decides and records one request; the caller commits. `extra` is what
    /// metering adds: the tokens a call may use (checked against its run's
    /// token cap), a refusal decided before any policy runs, and whether the call
    /// is BYOK (then the tenant setting decides whether money budgets apply).
    ///
    /// The steps, in order: [`claim`](Self::claim) the request (tenant, agent,
    /// run and the intent under its idempotency key); refuse it early
    /// ([`early_refusal`]); [`load_facts`](Self::load_facts); evaluate the
    /// policies; [`decide`](Self::decide), which reserves and records. The
    /// claim counted a round of the run; a rejected action gives it back.
    pub(crate) async fn run_with(
        &self,
        mut request: Request,
        mut extra: Extra,
    ) -> Result<Authorization> {
        let started = std::time::Instant::now();
        let claim = self.claim(&mut request, &mut extra).await?;
        let counted = claim.run.as_ref().map(|r| (r.id, r.rounds));
        let authorization = self
            .decide_claimed(claim, &request, &extra, started)
            .await?;
        if let (Some((run, rounds)), Outcome::Rejected) = (counted, authorization.outcome) {
            crate::store::runs::uncount_round(self.txn, self.tenant, run, rounds).await?;
        }
        Ok(authorization)
    }

    /// Steps 2 to 5 of [`Flow::run_with`], for a claimed request.
    async fn decide_claimed(
        &self,
        claim: Claim,
        request: &Request,
        extra: &Extra,
        started: std::time::Instant,
    ) -> Result<Authorization> {
        if let Some(reason) = early_refusal(self.tenant, &claim, request, extra) {
            return self
                .reject(claim.intent, vec![reason], request, claim.now)
                .await;
        }
        let facts = self.load_facts(&claim, request).await?;

        let span = tracing::Span::current();
        let evaluating = std::time::Instant::now();
        span.record("load_us", micros(evaluating - started));
        let decision = evaluate(&facts.policies, request, &facts.facts);
        let evaluated = std::time::Instant::now();
        span.record("evaluate_us", micros(evaluated - evaluating));
        if !facts.mismatched.is_empty() {
            // A budget in another currency refuses the request.
            let mut reasons = if decision.outcome() == Outcome::Rejected {
                decision.into_reasons()
            } else {
                Vec::new()
            };
            let currency = claim.currency;
            reasons.extend(
                facts
                    .mismatched
                    .iter()
                    .map(|s| mismatch_reason(s, currency)),
            );
            return self.reject(claim.intent, reasons, request, claim.now).await;
        }
        let (authorization, reserving) = self
            .decide(claim, facts, decision, request, extra, &span)
            .await?;
        span.record(
            "record_us",
            micros(evaluated.elapsed().saturating_sub(reserving)),
        );
        Ok(authorization)
    }

    /// Step 1, claim: checks the request, reads the tenant, finds the agent
    /// (whose row is authoritative for team and project), locks the run and
    /// prepares the intent; it is recorded once, with its outcome
    /// ([`Flow::record`]).
    async fn claim(&self, request: &mut Request, extra: &mut Extra) -> Result<Claim> {
        request.validate()?;
        stored_widths(request)?;
        let now = self.clock.now();
        // The tenant row, the stamp of its policies, the agent, for a
        // metered call its model's price in force and for a purchase the
        // merchant's history, in one read. A missing agent is a decision
        // (AGENT_NOT_FOUND), not an error. (A blank merchant name was
        // refused by `validate` above.)
        let claimed_agent = request.principal.agent_id;
        let pricing = extra.pricing.take();
        let merchant = request
            .merchant
            .as_ref()
            .map(|m| normalized_name(&m.name))
            .transpose()?;
        let joined = crate::store::policies::Joined {
            agent: Some(claimed_agent),
            price: pricing
                .as_ref()
                .map(|p| (p.provider.as_str(), p.model.as_str(), now)),
            merchant: merchant.as_deref(),
        };
        let read = crate::store::policies::tenant_and_stamp(self.txn, self.tenant, joined)
            .await?
            .ok_or_else(|| Error::not_found(TenantId::ENTITY, self.tenant))?;
        let tenant_row = read.tenant;
        let agent = read.agent;
        if let Some(pricing) = pricing {
            extra.refusal = pricing.apply(request, read.price.as_ref());
            // The estimate and the prices it added are checked like the rest.
            request.validate()?;
        }
        let tz = crate::budget::parse_timezone(&tenant_row.timezone)?;
        // An action may carry a cost (held like a purchase) or none (nothing
        // is held); the intent then records zero in the tenant's currency.
        let cost = request.money();
        if let Some((amount, _)) = cost {
            if amount <= Decimal::ZERO {
                return Err(Error::invalid(
                    "amount",
                    format!("must be positive, got {amount}"),
                ));
            }
        } else if request.action == crate::policy::ActionKind::Purchase {
            return Err(Error::invalid(
                "amount",
                "a purchase needs an amount and a currency",
            ));
        }
        let (amount, currency) = cost.unwrap_or((Decimal::ZERO, tenant_row.default_currency));
        let stored_amount = Amount::new(amount).map_err(|e| Error::invalid("amount", e))?;
        let merchant_name = merchant_label(request);

        let agent_row = agent.as_ref();
        if let Some(a) = agent_row {
            // The agent row is authoritative for team and project.
            request.principal.team_id = a.team_id;
            request.principal.project_id = a.project_id;
        }
        // Lock order: the run row before anything else it leads to. An agent
        // may only name its own runs.
        let run = match (request.principal.run_id, agent_row) {
            (Some(run), Some(a)) => Some(lock_run(self.txn, self.tenant, run, a.id, now).await?),
            _ => None,
        };
        // The intent is recorded once, with its outcome ([`Flow::record`]).
        let intent = purchase_intent::Model {
            id: PurchaseIntentId::new(),
            tenant_id: self.tenant,
            agent_id: agent_row.map(|a| a.id),
            team_id: agent_row.and_then(|a| a.team_id),
            project_id: agent_row.and_then(|a| a.project_id),
            run_id: agent_row.and(request.principal.run_id),
            idempotency_key: request.idempotency_key.clone(),
            amount: stored_amount,
            currency,
            merchant_name: merchant_name.clone(),
            action_kind: request.action.to_string(),
            merchant_domain: request.merchant.as_ref().and_then(|m| m.domain.clone()),
            merchant_url: None,
            mcc: request.merchant.as_ref().and_then(|m| m.mcc).map(i32::from),
            description: None,
            metadata: Metadata(request.metadata.clone()),
            status: PurchaseIntentStatus::Pending,
            rejection_code: None,
            rejection_reason: None,
            reasons: ReasonList::default(),
            reservation_id: None,
            approval_request_id: None,
            created_at: now,
            updated_at: now,
        };
        Ok(Claim {
            now,
            tz,
            tenant_row,
            policy_stamp: read.stamp,
            known_merchant: read.merchant,
            cost,
            amount,
            currency,
            merchant_name,
            claimed_agent,
            agent,
            run,
            intent,
        })
    }

    /// Step 3, load the facts: the compiled policies, the budgets that apply
    /// and their current windows (locked), whether the vendor is new, and the
    /// agent's recent requests for velocity.
    async fn load_facts(&self, claim: &Claim, request: &Request) -> Result<Loaded> {
        let now = claim.now;
        let currency = claim.currency;
        // Facts. Locks are taken in the one global order (docs/budgets.md,
        // "Lock order"): the budget windows by ascending id, then the agent
        // row, then merchants, then the audit chain last.
        let policies = Policies::new(self.ctx(), self.cache)
            .compiled_at(claim.policy_stamp)
            .await?;
        // A budget in another currency cannot evaluate the request: it is
        // refused below, never approved unchecked.
        let (mismatched, windows) = budgets_and_windows(
            self.txn,
            self.tenant,
            &request.principal,
            currency,
            claim.tz,
            now,
        )
        .await?;
        let mut facts = Facts::new(now, claim.tz);
        facts.budgets = windows.iter().map(|(b, w)| balance_of(b, w)).collect();
        // A vendor is a merchant: a request that names none (a tool call, an
        // LLM call, an action) has no vendor to be new. Fail closed for one
        // that does: a name never bought from, or a domain that is not where
        // the known merchant was seen, is a new vendor.
        facts.new_vendor = request
            .merchant
            .as_ref()
            .is_some_and(|m| !is_known_vendor(claim.known_merchant.as_ref(), m.domain.as_deref()));
        // Velocity: the agent row is locked first, so that concurrent requests
        // of one agent are counted one after the other (`FOR NO KEY UPDATE`,
        // which does not wait for the key-share locks that inserting this
        // agent's intents takes). Then one query for every velocity window:
        // the agent's earlier requests within the longest one.
        if let Some(&longest) = policies.velocity_windows().iter().max() {
            agent::Entity::find()
                .filter(agent::Column::TenantId.eq(self.tenant))
                .filter(agent::Column::Id.eq(claim.claimed_agent))
                .lock(LockType::NoKeyUpdate)
                .all(self.txn)
                .await
                .map(crate::store::repo::first)?;
            let since = now - Duration::seconds(i64::from(longest));
            let recent: Vec<DateTime<Utc>> = purchase_intent::Entity::find()
                .select_only()
                .column(purchase_intent::Column::CreatedAt)
                .filter(purchase_intent::Column::TenantId.eq(self.tenant))
                .filter(purchase_intent::Column::AgentId.eq(claim.claimed_agent))
                .filter(purchase_intent::Column::CreatedAt.gte(since))
                .into_tuple()
                .all(self.txn)
                .await?;
            for &window in policies.velocity_windows() {
                let since = now - Duration::seconds(i64::from(window));
                let count = recent.iter().filter(|at| **at >= since).count();
                facts = facts.velocity(window, u32::try_from(count).unwrap_or(u32::MAX));
            }
        }
        Ok(Loaded {
            policies,
            mismatched,
            windows,
            facts,
        })
    }

    /// Step 5, decide (the budgets are all in the request's currency): records
    /// a rejection, or holds the money
    /// ([`reserve`](Self::reserve)) and records the approval or the pending
    /// approval. Returns the result and the time spent reserving.
    async fn decide(
        &self,
        claim: Claim,
        loaded: Loaded,
        decision: Decision,
        request: &Request,
        extra: &Extra,
        span: &tracing::Span,
    ) -> Result<(Authorization, std::time::Duration)> {
        let Claim {
            now,
            tenant_row,
            cost,
            amount,
            currency,
            merchant_name,
            intent,
            ..
        } = claim;
        let Loaded { windows, .. } = loaded;
        let mut reserving = std::time::Duration::ZERO;
        // What reserving and approving write is held (on SQLite) and sent in
        // one call with the intent and its audit entry.
        let mut writes = Deferred::default();
        let settings = &tenant_row.settings;
        let authorization = match decision.outcome() {
            Outcome::Rejected => {
                self.reject(intent, decision.into_reasons(), request, now)
                    .await
            }
            outcome if cost.is_none() || (extra.byok && settings.byok_exempt_from_budgets) => {
                // Nothing to hold: an action without a cost, or a call the
                // tenant exempts from money budgets.
                let reasons = decision.into_reasons();
                if outcome == Outcome::Approved {
                    let approved = (None, Vec::new());
                    self.approve(intent, approved, request, &merchant_name, writes, now)
                        .await
                } else {
                    let expires_at = now + ttl(settings.approval_ttl_secs, DEFAULT_APPROVAL_TTL);
                    self.hold_for_approval(
                        intent,
                        None,
                        reasons,
                        request,
                        (expires_at, Vec::new()),
                        now,
                    )
                    .await
                }
            }
            outcome => {
                let expires_at = now
                    + if outcome == Outcome::Approved {
                        ttl(settings.reservation_ttl_secs, DEFAULT_RESERVATION_TTL)
                    } else {
                        ttl(settings.approval_ttl_secs, DEFAULT_APPROVAL_TTL)
                    };
                let hold = ReserveRequest::new(Money::new(amount, currency)?, expires_at)
                    .principal(request.principal)
                    .purchase_intent(intent.id);
                // Alert thresholds this hold crosses, announced with it.
                let crossings = crate::events::threshold_events(&windows, amount)?;
                let inside = Inside {
                    windows,
                    writes: &mut writes,
                };
                let (reserved, took) = self.reserve(&hold, inside, now, span).await;
                reserving = took;
                match reserved? {
                    ReserveOutcome::Rejected { shortfalls } => {
                        // Another request took the room between evaluation and
                        // reservation: a rejection, never an overspend.
                        let reasons = shortfalls
                            .iter()
                            .map(|s| shortfall_reason(s, currency))
                            .collect();
                        self.reject(intent, reasons, request, now).await
                    }
                    ReserveOutcome::Reserved { reservation, .. } => {
                        let reasons = decision.into_reasons();
                        if outcome == Outcome::Approved {
                            self.approve(
                                intent,
                                (Some(reservation), crossings),
                                request,
                                &merchant_name,
                                writes,
                                now,
                            )
                            .await
                        } else {
                            // The hold's expiry is set below: what is held
                            // is written first.
                            writes.flush(self.txn).await?;
                            self.hold_for_approval(
                                intent,
                                Some(reservation),
                                reasons,
                                request,
                                (expires_at, crossings),
                                now,
                            )
                            .await
                        }
                    }
                }
            }
        }?;
        Ok((authorization, reserving))
    }

    /// Step 4, reserve: holds the money on the windows locked while loading
    /// the facts, and records the time it took on the span.
    async fn reserve(
        &self,
        hold: &ReserveRequest,
        inside: Inside<'_>,
        now: DateTime<Utc>,
        span: &tracing::Span,
    ) -> (Result<ReserveOutcome>, std::time::Duration) {
        let reserve_started = std::time::Instant::now();
        let reserved = reserve_with(self.txn, self.tenant, hold, now, Some(inside)).await;
        let reserving = reserve_started.elapsed();
        span.record("reserve_us", micros(reserving));
        (reserved, reserving)
    }

    async fn reject(
        &self,
        intent: purchase_intent::Model,
        reasons: Vec<Reason>,
        request: &Request,
        now: DateTime<Utc>,
    ) -> Result<Authorization> {
        let first = reasons.first();
        let attempts: Vec<blocked_attempt::ActiveModel> = reasons
            .iter()
            .map(|r| blocked_attempt::ActiveModel {
                id: Set(BlockedAttemptId::new()),
                tenant_id: Set(self.tenant),
                agent_id: Set(intent.agent_id),
                purchase_intent_id: Set(Some(intent.id)),
                policy_id: Set(r.policy_id()),
                run_id: Set(intent.run_id),
                reason_code: Set(r.code().to_owned()),
                reason: Set(r.message().into_owned()),
                amount: Set(Some(intent.amount)),
                currency: Set(Some(intent.currency)),
                merchant_name: Set(Some(intent.merchant_name.clone())),
                created_at: Set(now),
            })
            .collect();
        let intent = self
            .record(
                purchase_intent::Model {
                    status: PurchaseIntentStatus::Rejected,
                    rejection_code: first.map(|r| r.code().to_owned()),
                    rejection_reason: first.map(|r| r.message().into_owned()),
                    reasons: ReasonList(reasons.clone()),
                    ..intent
                },
                ("rejected", AuditStatus::Denied, &reasons),
                request,
                (Deferred::default(), now),
            )
            .await?;
        // The blocked attempts refer to the intent, recorded just above.
        if !attempts.is_empty() {
            blocked_attempt::Entity::insert_many(attempts)
                .exec_without_returning(self.txn)
                .await?;
        }
        let event = crate::events::rejection_event(&intent, &reasons)?;
        crate::events::emit(self.txn, self.tenant, event, now).await?;
        Ok(Authorization {
            outcome: Outcome::Rejected,
            reasons,
            intent,
            reservation: None,
            approval: None,
            replayed: false,
        })
    }

    /// Records an approval: the merchant as seen, the intent and its audit
    /// entry, sent with the `writes` reserving held (on SQLite, one call),
    /// then the thresholds the hold crossed.
    async fn approve(
        &self,
        intent: purchase_intent::Model,
        (reservation, crossings): (Option<reservation::Model>, Vec<crate::events::NewEvent>),
        request: &Request,
        merchant_name: &str,
        mut writes: Deferred,
        now: DateTime<Utc>,
    ) -> Result<Authorization> {
        let domain = request
            .merchant
            .as_ref()
            .and_then(|m| m.domain.as_deref())
            .and_then(crate::policy::merchant_host);
        // Only a merchant is recorded as seen; a tool or a model is not a
        // vendor.
        if request.merchant.is_some() && !merchant_name.trim().is_empty() {
            let backend = self.txn.get_database_backend();
            hold_seen(
                backend,
                &mut writes,
                self.tenant,
                merchant_name,
                domain,
                now,
            )?;
        }
        let intent = self
            .record(
                purchase_intent::Model {
                    status: PurchaseIntentStatus::Approved,
                    reservation_id: reservation.as_ref().map(|r| r.id),
                    ..intent
                },
                ("approved", AuditStatus::Success, &[]),
                request,
                (writes, now),
            )
            .await?;
        crate::events::emit_all(self.txn, self.tenant, crossings, now).await?;
        Ok(Authorization {
            outcome: Outcome::Approved,
            reasons: Vec::new(),
            intent,
            reservation,
            approval: None,
            replayed: false,
        })
    }

    async fn hold_for_approval(
        &self,
        intent: purchase_intent::Model,
        reservation: Option<reservation::Model>,
        reasons: Vec<Reason>,
        request: &Request,
        (expires_at, crossings): (DateTime<Utc>, Vec<crate::events::NewEvent>),
        now: DateTime<Utc>,
    ) -> Result<Authorization> {
        // The matching policies' approval settings, strictest first; the
        // eligible approvers are fixed now, and the hold lives as long as the
        // request.
        let (settings, eligible) = crate::store::approvals::approval_settings(
            self.txn,
            self.tenant,
            self.cache,
            &reasons,
            intent.agent_id,
            self.clock,
        )
        .await?;
        let expires_at = settings
            .expires_after_secs
            .map_or(expires_at, |s| now + Duration::seconds(i64::from(s)));
        let reservation = match reservation {
            Some(hold) if hold.expires_at != expires_at => {
                let mut row: reservation::ActiveModel = hold.into();
                row.expires_at = Set(expires_at);
                Some(crate::store::repo::update_owned(self.txn, row).await?)
            }
            other => other,
        };
        let (rule, required) =
            crate::store::approvals::approval_rule_of(settings.quorum, eligible.len());
        let approval = approval_request::ActiveModel {
            id: Set(ApprovalRequestId::new()),
            tenant_id: Set(self.tenant),
            subject_kind: Set(ApprovalSubjectKind::PurchaseIntent),
            subject_id: Set(intent.id.as_uuid()),
            agent_id: Set(intent.agent_id),
            reservation_id: Set(reservation.as_ref().map(|r| r.id)),
            rule: Set(rule),
            required_approvals: Set(required),
            approver_role_id: Set(settings.approver_role),
            eligible_approvers: Set(crate::entity::json::UserIdList(eligible)),
            escalation_role_id: Set(settings.escalation.map(|e| e.role)),
            status: Set(ApprovalStatus::Pending),
            reasons: Set(ReasonList(reasons.clone())),
            requested_by: Set(intent.agent_id),
            expires_at: Set(expires_at),
            escalate_at: Set(settings
                .escalation
                .map(|e| now + Duration::seconds(i64::from(e.after_secs)))),
            escalated_to: Set(None),
            decided_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(self.txn)
        .await?;
        let intent = self
            .record(
                purchase_intent::Model {
                    status: PurchaseIntentStatus::PendingApproval,
                    reservation_id: reservation.as_ref().map(|r| r.id),
                    approval_request_id: Some(approval.id),
                    reasons: ReasonList(reasons.clone()),
                    ..intent
                },
                ("pending_approval", AuditStatus::Success, &reasons),
                request,
                (Deferred::default(), now),
            )
            .await?;
        // The thresholds the hold crossed, then the request for approval.
        crate::events::emit_all(self.txn, self.tenant, crossings, now).await?;
        let event = crate::events::approval_event(
            crate::events::types::APPROVAL_REQUESTED,
            &approval,
            None,
        )?;
        crate::events::emit(self.txn, self.tenant, event, now).await?;
        Ok(Authorization {
            outcome: Outcome::PendingApproval,
            reasons,
            intent,
            reservation,
            approval: Some(approval),
            replayed: false,
        })
    }

    /// Records the intent with its outcome, in one insert that also claims
    /// its idempotency key, and appends its audit entry (`action`, status and
    /// reason codes) right after it; on SQLite the `writes` held before it,
    /// the intent and the entry go in one call
    /// (`crate::audit::writes_then_append`). A concurrent call with the same
    /// key that committed first makes this a [`Error::Conflict`], and the
    /// caller's retry returns that call's result instead
    /// (`TenantScope::authorize`).
    async fn record(
        &self,
        intent: purchase_intent::Model,
        (action, status, reasons): (&str, AuditStatus, &[Reason]),
        request: &Request,
        (mut writes, now): (Deferred, DateTime<Utc>),
    ) -> Result<purchase_intent::Model> {
        let subject = match request.action {
            crate::policy::ActionKind::Purchase => "purchase",
            crate::policy::ActionKind::ToolCall => "tool_call",
            crate::policy::ActionKind::LlmUsage => "llm_usage",
            crate::policy::ActionKind::Custom(_) => "action",
        };
        let mut entry = AuditEntry::new(format!("{subject}.{action}"), "purchase_intent")
            .actor(
                AuditActorType::Agent,
                Some(request.principal.agent_id.as_uuid()),
            )
            .resource_id(intent.id)
            .status(status)
            .message(format!(
                "{} {} at {:?}",
                intent.amount, intent.currency, intent.merchant_name
            ))
            .reason_codes(reasons.iter().map(|r| r.code().to_owned()));
        if let Some(key) = &request.idempotency_key {
            entry = entry.correlation_id(key.clone());
        }
        writes.insert(self.txn.get_database_backend(), intent.clone());
        writes_then_append(self.txn, self.tenant, writes, entry, now)
            .await
            .map_err(|e| match e {
                Error::Conflict { .. } => {
                    Error::key_taken("purchase_intent", intent.idempotency_key.as_deref())
                }
                other => other,
            })?;
        Ok(intent)
    }
}
