//! LLM usage metering against the same budgets, policies and run caps as
//! purchases.
//!
//! - **Prices**: a per-tenant table of what each provider's model costs per
//!   million input, output, cached-input and reasoning tokens, in one
//!   currency, from a date on ([`Prices`]).
//! - **Pre-flight**: [`Meter::begin`] estimates the call (input tokens plus the
//!   output bound, at the price in force), and runs it through `authorize` as
//!   an `llm_usage` action: policies, the run's caps (tokens included) and the
//!   budget hierarchy decide, and the estimate is held. An unknown model, no
//!   price or no output bound is rejected with `PRICE_UNKNOWN`: never an
//!   unmetered call.
//! - **Post-flight**: [`Meter::finish`] writes the usage record and captures
//!   the actual cost in one transaction, by the settlement rule (more than the
//!   estimate is posted, the excess as overspend); a failed call captures only
//!   its input. Finishing twice records once.
//! - **BYOK**: with the tenant setting `byok_exempt_from_budgets`, calls made
//!   with the tenant's own key are metered for tokens and rounds but hold and
//!   spend nothing on money budgets.
//!
//! See `docs/usage.md`.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, IdenStatic, Iterable,
    JoinType, QueryFilter, QuerySelect, Set,
};
use serde::Serialize;

use crate::audit::{AuditEntry, write_then_append};
use crate::authorize::{Authorization, Extra};
use crate::codes;
use crate::entity::audit_log::AuditActorType;
use crate::entity::json::Metadata;
use crate::entity::purchase_intent::{self, PurchaseIntentStatus};
use crate::entity::{agent_run, model_price, usage_record};
use crate::id::{AgentId, ModelPriceId, PurchaseIntentId, RunId, UsageRecordId};
use crate::money::{Amount, Currency};
use crate::policy::{Reason, Request};
use crate::store::repo::{Ctx, finish, retry_contention};
use crate::store::reservations::{load, post_charge_in};
use crate::validate::check_width;
use crate::{Error, Result};

/// Longest provider name, in characters.
pub const MAX_PROVIDER_LEN: usize = 50;
/// Longest model name, in characters.
pub const MAX_MODEL_LEN: usize = 100;
const MILLION: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

/// A price to record for a provider's model.
///
/// ```
/// use bursar::store::NewPrice;
/// use rust_decimal::Decimal;
/// let price = NewPrice::new("anthropic", "claude-sonnet", "USD", Decimal::from(3), Decimal::from(15));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct NewPrice {
    provider: String,
    model: String,
    currency: String,
    input: Decimal,
    output: Decimal,
    cached_input: Option<Decimal>,
    reasoning: Option<Decimal>,
    effective_from: Option<DateTime<Utc>>,
}

impl NewPrice {
    /// `input` and `output` per million tokens of `model` at `provider`, in
    /// `currency`. Cached input defaults to the input price, reasoning to the
    /// output price; the price applies from now.
    #[must_use]
    pub fn new(
        provider: impl Into<String>,
        model: impl Into<String>,
        currency: impl Into<String>,
        input: Decimal,
        output: Decimal,
    ) -> Self {
        Self {
            provider: provider.into(),
            model: model.into(),
            currency: currency.into(),
            input,
            output,
            cached_input: None,
            reasoning: None,
            effective_from: None,
        }
    }

    /// The price per million input tokens served from the provider's cache.
    #[must_use]
    pub fn cached_input(mut self, per_million: Decimal) -> Self {
        self.cached_input = Some(per_million);
        self
    }

    /// The price per million reasoning tokens.
    #[must_use]
    pub fn reasoning(mut self, per_million: Decimal) -> Self {
        self.reasoning = Some(per_million);
        self
    }

    /// From when the price applies (default: now).
    #[must_use]
    pub fn effective_from(mut self, at: DateTime<Utc>) -> Self {
        self.effective_from = Some(at);
        self
    }
}

fn name(field: &str, value: &str, max: usize) -> Result<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(Error::invalid(field, "must not be blank"));
    }
    check_width(field, trimmed, max)?;
    Ok(trimmed.to_owned())
}

fn per_million(field: &str, value: Decimal) -> Result<Amount> {
    if value < Decimal::ZERO {
        return Err(Error::invalid(
            field,
            format!("must not be negative, got {value}"),
        ));
    }
    Amount::new(value).map_err(|e| Error::invalid(field, e))
}

/// The model price table of one tenant. Get it from
/// [`TenantScope::prices`](crate::store::TenantScope::prices).
#[derive(Debug)]
pub struct Prices<'a> {
    ctx: Ctx<'a>,
}

impl<'a> Prices<'a> {
    pub(crate) fn new(ctx: Ctx<'a>) -> Self {
        Self { ctx }
    }

    /// Records a price. A later `effective_from` for the same model replaces
    /// it from then on; earlier calls keep the price they were made at.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a blank or over-long provider or model, an
    /// unknown currency, a negative or unstorable price; [`Error::Conflict`]
    /// for a second price of the model from the same instant;
    /// [`Error::Database`].
    #[tracing::instrument(level = "info", name = "bursar.prices.set", skip_all, fields(tenant = %self.ctx.tenant))]
    pub async fn set(&self, new: NewPrice) -> Result<model_price::Model> {
        let provider = name("provider", &new.provider, MAX_PROVIDER_LEN)?;
        let model = name("model", &new.model, MAX_MODEL_LEN)?;
        let currency =
            Currency::from_code(&new.currency).map_err(|e| Error::invalid("currency", e))?;
        let input = per_million("input_per_million", new.input)?;
        let output = per_million("output_per_million", new.output)?;
        let cached = per_million(
            "cached_input_per_million",
            new.cached_input.unwrap_or(new.input),
        )?;
        let reasoning = per_million("reasoning_per_million", new.reasoning.unwrap_or(new.output))?;
        let now = self.ctx.now();
        Ok(model_price::ActiveModel {
            id: Set(ModelPriceId::new()),
            tenant_id: Set(self.ctx.tenant),
            provider: Set(provider),
            model: Set(model),
            currency: Set(currency),
            input_per_million: Set(input),
            output_per_million: Set(output),
            cached_input_per_million: Set(cached),
            reasoning_per_million: Set(reasoning),
            effective_from: Set(new.effective_from.unwrap_or(now)),
            created_at: Set(now),
        }
        .insert(&self.ctx.db)
        .await?)
    }

    /// The price of a model in force at `at`, if any.
    ///
    /// # Errors
    /// [`Error::Database`].
    #[tracing::instrument(level = "debug", name = "bursar.prices.at", skip_all, fields(tenant = %self.ctx.tenant))]
    pub async fn at(
        &self,
        provider: &str,
        model: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<model_price::Model>> {
        price_at(&self.ctx.db, self.ctx.tenant, provider, model, at).await
    }
}

async fn price_at(
    conn: &impl ConnectionTrait,
    tenant: crate::id::TenantId,
    provider: &str,
    model: &str,
    at: DateTime<Utc>,
) -> Result<Option<model_price::Model>> {
    Ok(model_price::Entity::find()
        .filter(in_force(tenant, provider, model, at))
        .all(conn)
        .await
        .map(crate::store::repo::first)?)
}

/// Which row of the price table is in force for a model at `at`: the newest
/// one effective by then (found with `MAX`, not `ORDER BY … LIMIT ?`, which
/// SQLite compiles again on every call: `crate::store::repo::first`). Every
/// part names the tenant, so that the statement stays on one tenant's shard
/// (docs/scaling.md).
pub(crate) fn in_force(
    tenant: crate::id::TenantId,
    provider: &str,
    model: &str,
    at: DateTime<Utc>,
) -> Condition {
    let of_model = Condition::all()
        .add(model_price::Column::TenantId.eq(tenant))
        .add(model_price::Column::Provider.eq(provider.trim()))
        .add(model_price::Column::Model.eq(model.trim()));
    let newest = Query::select()
        .expr(model_price::Column::EffectiveFrom.max())
        .from(model_price::Entity)
        .cond_where(
            of_model
                .clone()
                .add(model_price::Column::EffectiveFrom.lte(at)),
        )
        .to_owned();
    of_model.add(
        Expr::col((model_price::Entity, model_price::Column::EffectiveFrom))
            .eq(Expr::SubQuery(None, Box::new(newest.into()))),
    )
}

/// What a metered call needs priced: its model and the tokens its estimate
/// counts. `authorize` reads the model's price in force with the tenant row
/// (`crate::store::policies::tenant_and_stamp`) and prices the request with
/// [`Pricing::apply`] before anything else looks at it.
#[derive(Clone, Debug)]
pub(crate) struct Pricing {
    pub(crate) provider: String,
    pub(crate) model: String,
    input_tokens: u64,
    max_output_tokens: Option<u64>,
}

impl Pricing {
    /// Prices `request` at `price`, the model's price in force (`None`: the
    /// table has none): the estimate (input plus the most output at the
    /// model's prices) becomes its cost and the prices travel in its
    /// metadata, so that [`Meter::finish`] charges at the same ones. Returns
    /// the refusal for a call that cannot be metered: no price, or no output
    /// bound.
    pub(crate) fn apply(
        &self,
        request: &mut Request,
        price: Option<&model_price::Model>,
    ) -> Option<Reason> {
        let (provider, model) = (&self.provider, &self.model);
        let Some(price) = price else {
            return Some(price_unknown(format!(
                "no price is known for model {model:?} of {provider:?}; the call cannot be metered"
            )));
        };
        let rates = Rates::of(price);
        for (key, value) in RATE_KEYS.iter().zip([
            rates.currency.to_string(),
            rates.input_per_million.to_string(),
            rates.output_per_million.to_string(),
            rates.cached_input_per_million.to_string(),
            rates.reasoning_per_million.to_string(),
        ]) {
            request.metadata.insert((*key).to_owned(), value);
        }
        let Some(max_output) = self.max_output_tokens else {
            return Some(price_unknown(format!(
                "the call of {model:?} has no output bound (max_output_tokens), so its cost cannot be estimated"
            )));
        };
        let estimate = cost_of(self.input_tokens, price.input_per_million)
            + cost_of(max_output, price.output_per_million);
        if estimate > Decimal::ZERO {
            request.amount = Some(estimate);
            request.currency = Some(price.currency);
        }
        None
    }

    /// Reads the price in force at `at` and prices `request` with it
    /// ([`Pricing::apply`]): for a call whose idempotency key must be
    /// checked against the priced request before `authorize` reads the
    /// tenant row.
    pub(crate) async fn read_and_apply(
        &self,
        conn: &impl ConnectionTrait,
        tenant: crate::id::TenantId,
        request: &mut Request,
        at: DateTime<Utc>,
    ) -> Result<Option<Reason>> {
        let price = price_at(conn, tenant, &self.provider, &self.model, at).await?;
        Ok(self.apply(request, price.as_ref()))
    }
}

/// The prices per million tokens a call is charged at, carried in its
/// intent's metadata from [`Meter::begin`] to [`Meter::finish`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rates {
    currency: Currency,
    input_per_million: Amount,
    output_per_million: Amount,
    cached_input_per_million: Amount,
    reasoning_per_million: Amount,
}

/// The metadata keys [`Rates`] are recorded under.
const RATE_KEYS: [&str; 5] = [
    "price.currency",
    "price.input_per_million",
    "price.output_per_million",
    "price.cached_input_per_million",
    "price.reasoning_per_million",
];

impl Rates {
    fn of(price: &model_price::Model) -> Self {
        Self {
            currency: price.currency,
            input_per_million: price.input_per_million,
            output_per_million: price.output_per_million,
            cached_input_per_million: price.cached_input_per_million,
            reasoning_per_million: price.reasoning_per_million,
        }
    }

    /// The rates recorded on an intent; `None` when any is missing or does
    /// not parse (the caller then reads the price table).
    fn from_metadata(metadata: &Metadata) -> Option<Self> {
        let get = |key: &str| metadata.0.get(key);
        let amount = |key: &str| {
            get(key)
                .and_then(|v| v.parse::<Decimal>().ok())
                .and_then(|d| Amount::new(d).ok())
        };
        Some(Self {
            currency: get(RATE_KEYS[0])?.parse().ok()?,
            input_per_million: amount(RATE_KEYS[1])?,
            output_per_million: amount(RATE_KEYS[2])?,
            cached_input_per_million: amount(RATE_KEYS[3])?,
            reasoning_per_million: amount(RATE_KEYS[4])?,
        })
    }
}

/// Tokens × price per million, rounded up to the storable scale (6 places),
/// so an estimate never under-holds.
fn cost_of(tokens: u64, per_million: Amount) -> Decimal {
    let cost = Decimal::from(tokens) * per_million.get() / MILLION;
    cost.round_dp_with_strategy(6, rust_decimal::RoundingStrategy::AwayFromZero)
}

/// A metered LLM call, before it is made.
///
/// ```
/// use bursar::id::AgentId;
/// use bursar::store::MeterRequest;
/// let call = MeterRequest::new(AgentId::new(), "anthropic", "claude-sonnet", 1_200)
///     .max_output_tokens(800)
///     .idempotency_key("call-1");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct MeterRequest {
    agent: AgentId,
    run: Option<RunId>,
    provider: String,
    model: String,
    input_tokens: u64,
    max_output_tokens: Option<u64>,
    byok: bool,
    idempotency_key: Option<String>,
}

impl MeterRequest {
    /// A call of `model` at `provider` by `agent` with `input_tokens` of
    /// prompt. Without [`MeterRequest::max_output_tokens`] it is refused
    /// (`PRICE_UNKNOWN`): an unbounded call cannot be estimated.
    #[must_use]
    pub fn new(
        agent: AgentId,
        provider: impl Into<String>,
        model: impl Into<String>,
        input_tokens: u64,
    ) -> Self {
        Self {
            agent,
            run: None,
            provider: provider.into(),
            model: model.into(),
            input_tokens,
            max_output_tokens: None,
            byok: false,
            idempotency_key: None,
        }
    }

    /// The most output tokens the call may produce (the provider's
    /// `max_tokens`).
    #[must_use]
    pub fn max_output_tokens(mut self, tokens: u64) -> Self {
        self.max_output_tokens = Some(tokens);
        self
    }

    /// The run the call belongs to.
    #[must_use]
    pub fn run(mut self, run: RunId) -> Self {
        self.run = Some(run);
        self
    }

    /// Made with the tenant's own provider key.
    #[must_use]
    pub fn byok(mut self, byok: bool) -> Self {
        self.byok = byok;
        self
    }

    /// Makes a retried `begin` return the first result.
    #[must_use]
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

/// What a metered call used, after it returned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Input tokens, including those served from cache.
    pub input_tokens: u64,
    /// Of the input, tokens served from the provider's cache.
    pub cached_input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Reasoning tokens.
    pub reasoning_tokens: u64,
    /// How long the call took, in milliseconds.
    pub latency_ms: Option<u64>,
    /// The call failed or was cancelled: only its input is charged.
    pub failed: bool,
}

/// Cost and tokens summed from usage records.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UsageTotals {
    /// Calls recorded.
    pub calls: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Reasoning tokens.
    pub reasoning_tokens: u64,
    /// Cost per currency (BYOK calls included at their metered cost).
    pub cost: Vec<(Currency, Decimal)>,
}

/// Which usage records [`Meter::totals`] sums.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsageFilter {
    /// Only this run's.
    pub run: Option<RunId>,
    /// Only this agent's.
    pub agent: Option<AgentId>,
    /// Only calls at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Only calls before this instant.
    pub before: Option<DateTime<Utc>>,
}

/// LLM metering of one tenant. Get it from
/// [`TenantScope::meter`](crate::store::TenantScope::meter).
#[derive(Debug)]
pub struct Meter<'a> {
    scope: &'a crate::store::TenantScope,
}

impl<'a> Meter<'a> {
    pub(crate) fn new(scope: &'a crate::store::TenantScope) -> Self {
        Self { scope }
    }

    fn ctx(&self) -> Ctx<'_> {
        self.scope.ctx()
    }

    /// Pre-flight: estimates the call and runs it through `authorize` as an
    /// `llm_usage` action, holding the estimate. The returned
    /// [`Authorization`]'s intent id is the call's handle for
    /// [`Meter::finish`].
    ///
    /// # Errors
    /// As [`TenantScope::authorize`](crate::store::TenantScope::authorize);
    /// [`Error::Invalid`] for a blank or over-long provider or model.
    #[tracing::instrument(level = "info", name = "bursar.meter.begin", skip_all, fields(tenant = %self.scope.tenant_id()))]
    pub async fn begin(&self, call: MeterRequest) -> Result<Authorization> {
        let provider = name("provider", &call.provider, MAX_PROVIDER_LEN)?;
        let model = name("model", &call.model, MAX_MODEL_LEN)?;
        let mut request = Request::new(call.agent, crate::policy::ActionKind::LlmUsage)
            .model(model.clone())
            .metadata("provider", provider.clone());
        if let Some(run) = call.run {
            request = request.run(run);
        }
        if let Some(key) = &call.idempotency_key {
            request = request.idempotency_key(key.clone());
        }
        if call.byok {
            request = request.metadata("byok", "true");
        }
        // Priced by `authorize`, with the price it reads in its transaction.
        let extra = Extra {
            tokens: call
                .input_tokens
                .saturating_add(call.max_output_tokens.unwrap_or(0)),
            refusal: None,
            byok: call.byok,
            pricing: Some(Pricing {
                provider,
                model,
                input_tokens: call.input_tokens,
                max_output_tokens: call.max_output_tokens,
            }),
        };
        self.scope.authorize_extra(request, extra).await
    }

    /// Post-flight: records what the call used and captures its actual cost
    /// from the hold, in one transaction: the usage record, the run's tokens
    /// and cost, and the capture (more than the estimate is posted, the excess
    /// as overspend; a failed call is charged its input only). Finishing a
    /// call again returns the first record and changes nothing.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown handle; [`Error::Conflict`] for a
    /// call that was not approved or is not an LLM call; [`Error::Invalid`]
    /// when the cached tokens exceed the input; [`Error::Database`].
    #[tracing::instrument(level = "info", name = "bursar.meter.finish", skip_all, fields(tenant = %self.scope.tenant_id(), intent = %handle))]
    pub async fn finish(
        &self,
        handle: PurchaseIntentId,
        usage: Usage,
    ) -> Result<usage_record::Model> {
        if usage.cached_input_tokens > usage.input_tokens {
            return Err(Error::invalid(
                "cached_input_tokens",
                format!(
                    "{} is more than the {} input tokens",
                    usage.cached_input_tokens, usage.input_tokens
                ),
            ));
        }
        let ctx = self.ctx();
        let now = ctx.now();
        retry_contention(|| async {
            let txn = ctx.begin_write().await?;
            let result = self.finish_in(&txn, &ctx, handle, usage, now).await;
            finish(txn, result).await
        })
        .await
    }

    async fn finish_in(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        ctx: &Ctx<'_>,
        handle: PurchaseIntentId,
        usage: Usage,
        now: DateTime<Utc>,
    ) -> Result<usage_record::Model> {
        let tenant = ctx.tenant;
        // The call, its usage record (when it was finished before) and its
        // run, in one read. The joins name the tenant on both sides, so that
        // the statement stays on one tenant's shard (docs/scaling.md).
        let usage_of_intent: sea_orm::RelationDef =
            usage_record::Entity::belongs_to(purchase_intent::Entity)
                .from((
                    usage_record::Column::TenantId,
                    usage_record::Column::PurchaseIntentId,
                ))
                .to((
                    purchase_intent::Column::TenantId,
                    purchase_intent::Column::Id,
                ))
                .into();
        let run_of_intent: sea_orm::RelationDef =
            purchase_intent::Entity::belongs_to(agent_run::Entity)
                .from((
                    purchase_intent::Column::TenantId,
                    purchase_intent::Column::RunId,
                ))
                .to((agent_run::Column::TenantId, agent_run::Column::Id))
                .into();
        let mut read = purchase_intent::Entity::find()
            .select_also(usage_record::Entity)
            .join_rev(JoinType::LeftJoin, usage_of_intent)
            .join(JoinType::LeftJoin, run_of_intent)
            .filter(purchase_intent::Column::TenantId.eq(tenant))
            .filter(purchase_intent::Column::Id.eq(handle))
            .select_also_fake(agent_run::Entity);
        // `select_also_fake` leaves the run's columns to the caller; they are
        // selected under the prefix its rows are read with.
        for column in agent_run::Column::iter() {
            read = read.expr_as(
                column.select_as(column.into_expr()),
                format!("C_{}", column.as_str()),
            );
        }
        let (intent, finished, run) = read
            .all(txn)
            .await
            .map(crate::store::repo::first)?
            .ok_or_else(|| Error::not_found(PurchaseIntentId::ENTITY, handle))?;
        if let Some(found) = finished.filter(|u| u.tenant_id == tenant) {
            return Ok(found);
        }
        if intent.action_kind != crate::policy::ActionKind::LlmUsage.to_string() {
            return Err(Error::conflict(
                "purchase_intent",
                format!(
                    "{handle} is a {} action, not a metered call",
                    intent.action_kind
                ),
            ));
        }
        // The run as read: its row is locked when its usage is counted
        // (`count_usage`), before the reservation and windows.
        let run = match intent.run_id {
            Some(id) => Some(
                run.filter(|r| r.tenant_id == tenant && r.id == id)
                    .ok_or_else(|| Error::not_found(crate::id::RunId::ENTITY, id))?,
            ),
            None => None,
        };
        if intent.status != PurchaseIntentStatus::Approved {
            return Err(Error::conflict(
                "purchase_intent",
                format!(
                    "metered call {handle} is {:?}; only an approved call is finished",
                    intent.status
                ),
            ));
        }
        let provider = intent
            .metadata
            .0
            .get("provider")
            .cloned()
            .unwrap_or_default();
        let is_byok = intent.metadata.0.get("byok").is_some_and(|v| v == "true");
        let price = match Rates::from_metadata(&intent.metadata) {
            Some(rates) => rates,
            // Recorded without its prices: the price in force when it began.
            None => price_at(
                txn,
                tenant,
                &provider,
                &intent.merchant_name,
                intent.created_at,
            )
            .await?
            .map(|p| Rates::of(&p))
            .ok_or_else(|| {
                Error::conflict(
                    "model_price",
                    format!("the price of {:?} is gone", intent.merchant_name),
                )
            })?,
        };
        let fresh_input = usage.input_tokens - usage.cached_input_tokens;
        let mut cost = cost_of(fresh_input, price.input_per_million)
            + cost_of(usage.cached_input_tokens, price.cached_input_per_million);
        if !usage.failed {
            cost += cost_of(usage.output_tokens, price.output_per_million)
                + cost_of(usage.reasoning_tokens, price.reasoning_per_million);
        }
        let cost = Amount::new(cost).map_err(|e| Error::invalid("cost", e))?;
        let tokens = usage
            .input_tokens
            .saturating_add(usage.output_tokens)
            .saturating_add(usage.reasoning_tokens);
        if let Some(run) = &run {
            crate::store::runs::count_usage(txn, run, tokens, cost, now).await?;
        }
        if let Some(reservation) = intent.reservation_id {
            let current = load(txn, tenant, reservation, true).await?;
            // The hold is settled by this one call: by the settlement rule,
            // whatever its state.
            post_charge_in(txn, tenant, current, cost, now).await?;
        }
        let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let record = usage_record::Model {
            id: UsageRecordId::new(),
            tenant_id: tenant,
            agent_id: intent.agent_id,
            run_id: intent.run_id,
            reservation_id: intent.reservation_id,
            provider,
            model: intent.merchant_name.clone(),
            input_tokens: as_i64(usage.input_tokens),
            output_tokens: as_i64(usage.output_tokens),
            cached_input_tokens: as_i64(usage.cached_input_tokens),
            reasoning_tokens: as_i64(usage.reasoning_tokens),
            latency_ms: usage.latency_ms.map(as_i64),
            purchase_intent_id: Some(handle),
            cost,
            currency: price.currency,
            is_byok,
            occurred_at: now,
            metadata: Metadata::default(),
            created_at: now,
        };
        // The usage record and its audit entry (on SQLite in one call).
        let entry = AuditEntry::new("llm_usage.metered", "usage_record")
            .actor(AuditActorType::Agent, intent.agent_id.map(|a| a.as_uuid()))
            .resource_id(record.id)
            .correlation_id(handle.to_string())
            .message(format!(
                "{} tokens, {} {}{}",
                tokens,
                cost,
                price.currency,
                if usage.failed { " (failed call)" } else { "" }
            ));
        write_then_append(txn, tenant, record.clone(), entry, now)
            .await
            .map_err(|e| match e {
                // A concurrent `finish` of the same call recorded it first: run
                // again, this call returns that record.
                Error::Conflict { .. } => Error::Contention {
                    reason: format!("metered call {handle} was finished concurrently"),
                },
                other => other,
            })?;
        Ok(record)
    }

    /// Cost and tokens summed from the usage records that match `filter`.
    ///
    /// # Errors
    /// [`Error::Database`].
    #[tracing::instrument(level = "debug", name = "bursar.meter.totals", skip_all, fields(tenant = %self.scope.tenant_id()))]
    pub async fn totals(&self, filter: UsageFilter) -> Result<UsageTotals> {
        let ctx = self.ctx();
        let mut query =
            usage_record::Entity::find().filter(usage_record::Column::TenantId.eq(ctx.tenant));
        if let Some(run) = filter.run {
            query = query.filter(usage_record::Column::RunId.eq(run));
        }
        if let Some(agent) = filter.agent {
            query = query.filter(usage_record::Column::AgentId.eq(agent));
        }
        if let Some(from) = filter.from {
            query = query.filter(usage_record::Column::OccurredAt.gte(from));
        }
        if let Some(before) = filter.before {
            query = query.filter(usage_record::Column::OccurredAt.lt(before));
        }
        let mut totals = UsageTotals::default();
        let as_u64 = |n: i64| u64::try_from(n).unwrap_or(0);
        for r in query.all(&ctx.db).await? {
            totals.calls += 1;
            totals.input_tokens += as_u64(r.input_tokens);
            totals.output_tokens += as_u64(r.output_tokens);
            totals.reasoning_tokens += as_u64(r.reasoning_tokens);
            match totals.cost.iter_mut().find(|(c, _)| *c == r.currency) {
                Some((_, sum)) => *sum += r.cost.get(),
                None => totals.cost.push((r.currency, r.cost.get())),
            }
        }
        Ok(totals)
    }
}

fn price_unknown(message: String) -> Reason {
    Reason::new(codes::PRICE_UNKNOWN, message).with_undetermined(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded() -> Metadata {
        let mut m = Metadata::default();
        for (k, v) in RATE_KEYS.iter().zip(["USD", "2", "10", "0.5", "10"]) {
            m.0.insert((*k).to_owned(), v.to_owned());
        }
        m
    }

    #[test]
    fn rates_are_read_back_only_when_every_one_is_recorded_and_parses() {
        let rates = Rates::from_metadata(&recorded()).expect("complete rates");
        assert_eq!(rates.currency, Currency::USD);
        assert_eq!(rates.output_per_million.get(), Decimal::from(10));
        assert_eq!(rates.cached_input_per_million.get(), "0.5".parse().unwrap());
        for key in RATE_KEYS {
            let mut missing = recorded();
            missing.0.remove(key);
            assert_eq!(Rates::from_metadata(&missing), None, "{key} missing");
            let mut bad = recorded();
            bad.0.insert(key.to_owned(), "ten".to_owned());
            assert_eq!(Rates::from_metadata(&bad), None, "{key} malformed");
        }
        let mut negative = recorded();
        negative.0.insert(RATE_KEYS[1].to_owned(), "-1".to_owned());
        assert_eq!(Rates::from_metadata(&negative), None, "a negative price");
    }
}
