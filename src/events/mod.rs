//! The transactional outbox: events the host must act on, written in the same
//! transaction as the change they announce (so an event exists if and only if
//! its change committed), and handed out to named consumers.
//!
//! See `docs/events.md` for every event type and its payload, and
//! [`Events`] for polling and acknowledging.

pub mod signature;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::LockType;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, Statement,
};
use serde::Serialize;

use crate::entity::{event, event_consumer};
use crate::id::{EventConsumerId, EventId, TenantId};
use crate::store::repo::{Ctx, finish, retry_contention};
use crate::validate::check_width;
use crate::{Error, Result};

/// The payload schema version of every event bursar writes today.
pub const EVENT_VERSION: i32 = 1;
/// How long a polled batch stays leased to its poller: unacknowledged after
/// this, it is handed out again (at-least-once delivery).
pub const DELIVERY_LEASE: Duration = Duration::seconds(30);
/// The most events one poll returns.
pub const MAX_POLL: u64 = 1_000;
/// Longest consumer name, in characters.
pub const MAX_CONSUMER_LEN: usize = 100;

/// Event type names.
pub mod types {
    /// A request now waits for human approval.
    pub const APPROVAL_REQUESTED: &str = "approval.requested";
    /// An approval request was approved, rejected or cancelled.
    pub const APPROVAL_DECIDED: &str = "approval.decided";
    /// An approval request expired undecided.
    pub const APPROVAL_EXPIRED: &str = "approval.expired";
    /// An approval request escalated to a second approver role.
    pub const APPROVAL_ESCALATED: &str = "approval.escalated";
    /// A purchase was rejected by a policy or a budget.
    pub const PURCHASE_REJECTED: &str = "purchase.rejected";
    /// A budget window's use (spent + reserved) reached one of the budget's
    /// alert thresholds; once per window and threshold.
    pub const BUDGET_THRESHOLD_CROSSED: &str = "budget.threshold_crossed";
    /// A settled charge was posted beyond a budget's limit.
    pub const BUDGET_OVERSPENT: &str = "budget.overspent";
    /// A held reservation expired and its hold returned to the budgets.
    pub const RESERVATION_EXPIRED: &str = "reservation.expired";
    /// An agent's API key was revoked.
    pub const KEY_REVOKED: &str = "key.revoked";
    /// A run was killed (its holds released).
    pub const RUN_KILLED: &str = "run.killed";
}

/// An event to append, inside the transaction of the change it announces.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NewEvent {
    pub(crate) event_type: &'static str,
    pub(crate) subject_type: &'static str,
    pub(crate) subject_id: Option<uuid::Uuid>,
    pub(crate) dedup_key: Option<String>,
    pub(crate) payload: serde_json::Value,
}

impl NewEvent {
    /// An event of `event_type` about `subject_type` row `subject_id`.
    pub(crate) fn new(
        event_type: &'static str,
        subject_type: &'static str,
        subject_id: Option<uuid::Uuid>,
        payload: &impl Serialize,
    ) -> Result<Self> {
        Ok(Self {
            event_type,
            subject_type,
            subject_id,
            dedup_key: None,
            payload: serde_json::to_value(payload)
                .map_err(|e| Error::invalid("payload", e.to_string()))?,
        })
    }
}

/// Appends an event in the caller's transaction. The tenant's events are
/// numbered in commit order: on PostgreSQL a transaction-scoped advisory lock
/// per tenant is held from here to the commit (taken just before the audit
/// chain's, see `docs/budgets.md` "Lock order"); SQLite writers are already
/// serialized. An event with a dedup key that the tenant already has is not
/// written: returns `None`.
pub(crate) async fn emit(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    new: NewEvent,
    now: DateTime<Utc>,
) -> Result<Option<event::Model>> {
    if conn.get_database_backend() == DatabaseBackend::Postgres {
        conn.execute_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            [format!("bursar.events.{tenant}").into()],
        ))
        .await?;
    }
    if let Some(key) = &new.dedup_key {
        let seen = event::Entity::find()
            .filter(event::Column::TenantId.eq(tenant))
            .filter(event::Column::DedupKey.eq(key.as_str()))
            .one(conn)
            .await?;
        if seen.is_some() {
            return Ok(None);
        }
    }
    let last = event::Entity::find()
        .filter(event::Column::TenantId.eq(tenant))
        .order_by_desc(event::Column::Seq)
        .limit(1)
        .one(conn)
        .await?;
    let row = event::ActiveModel {
        id: Set(EventId::new()),
        tenant_id: Set(tenant),
        seq: Set(last.map_or(1, |l| l.seq + 1)),
        event_type: Set(new.event_type.to_owned()),
        version: Set(EVENT_VERSION),
        subject_type: Set(new.subject_type.to_owned()),
        subject_id: Set(new.subject_id),
        dedup_key: Set(new.dedup_key),
        payload: Set(new.payload),
        created_at: Set(now),
    }
    .insert(conn)
    .await?;
    Ok(Some(row))
}

/// A tenant's events, handed out to named consumers.
#[async_trait]
pub trait EventRepository {
    /// Up to `limit` events after the consumer's cursor, in commit order
    /// (ascending `seq`), leased to this caller for [`DELIVERY_LEASE`].
    /// Concurrent polls under one consumer name never receive the same
    /// events: each takes the consumer's row lock in turn and continues after
    /// the batches still leased. A batch not acknowledged within its lease is
    /// handed out again (at-least-once).
    ///
    /// # Errors
    /// [`Error::Invalid`] for an empty or over-long consumer name or a
    /// `limit` of 0 or above [`MAX_POLL`].
    async fn poll(&self, consumer: &str, limit: u64) -> Result<Vec<event::Model>>;
    /// Acknowledges every event up to `seq` for the consumer: they are never
    /// handed out to it again.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad consumer name; [`Error::Conflict`] when
    /// `seq` was never handed out to this consumer.
    async fn ack(&self, consumer: &str, seq: i64) -> Result<()>;
}

/// The SeaORM [`EventRepository`]. Get it from
/// [`TenantScope::events`](crate::store::TenantScope::events).
#[derive(Debug)]
pub struct Events<'a> {
    ctx: Ctx<'a>,
}

impl<'a> Events<'a> {
    pub(crate) fn new(ctx: Ctx<'a>) -> Self {
        Self { ctx }
    }

    /// The consumer's row, created if absent, locked for this transaction.
    async fn cursor(
        &self,
        conn: &impl ConnectionTrait,
        consumer: &str,
        now: DateTime<Utc>,
    ) -> Result<event_consumer::Model> {
        let row = event_consumer::ActiveModel {
            id: Set(EventConsumerId::new()),
            tenant_id: Set(self.ctx.tenant),
            name: Set(consumer.to_owned()),
            acked_seq: Set(0),
            delivered_seq: Set(0),
            lease_until: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        };
        event_consumer::Entity::insert(row)
            .on_conflict_do_nothing_on([
                event_consumer::Column::TenantId,
                event_consumer::Column::Name,
            ])
            .exec_without_returning(conn)
            .await?;
        event_consumer::Entity::find()
            .filter(event_consumer::Column::TenantId.eq(self.ctx.tenant))
            .filter(event_consumer::Column::Name.eq(consumer))
            .lock(LockType::Update)
            .one(conn)
            .await?
            .ok_or_else(|| Error::not_found("event_consumer", consumer))
    }
}

fn check_consumer(consumer: &str) -> Result<()> {
    if consumer.trim().is_empty() {
        return Err(Error::invalid("consumer", "must not be empty"));
    }
    check_width("consumer", consumer, MAX_CONSUMER_LEN)
}

#[async_trait]
impl EventRepository for Events<'_> {
    #[tracing::instrument(level = "debug", name = "bursar.events.poll", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn poll(&self, consumer: &str, limit: u64) -> Result<Vec<event::Model>> {
        check_consumer(consumer)?;
        if limit == 0 || limit > MAX_POLL {
            return Err(Error::invalid(
                "limit",
                format!("{limit}, must be 1 to {MAX_POLL}"),
            ));
        }
        let now = self.ctx.now();
        retry_contention(|| async move {
            let txn = self.ctx.begin_write().await?;
            let result = async {
                let cursor = self.cursor(&txn, consumer, now).await?;
                let leased = cursor.lease_until.is_some_and(|t| t > now);
                let after = if leased {
                    cursor.delivered_seq
                } else {
                    cursor.acked_seq
                };
                let batch = event::Entity::find()
                    .filter(event::Column::TenantId.eq(self.ctx.tenant))
                    .filter(event::Column::Seq.gt(after))
                    .order_by_asc(event::Column::Seq)
                    .limit(limit)
                    .all(&txn)
                    .await?;
                if let Some(last) = batch.last() {
                    let mut row: event_consumer::ActiveModel = cursor.into();
                    row.delivered_seq = Set(last.seq);
                    row.lease_until = Set(Some(now + DELIVERY_LEASE));
                    row.updated_at = Set(now);
                    crate::store::repo::update_owned(&txn, row).await?;
                }
                Ok(batch)
            }
            .await;
            finish(txn, result).await
        })
        .await
    }

    #[tracing::instrument(level = "debug", name = "bursar.events.ack", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn ack(&self, consumer: &str, seq: i64) -> Result<()> {
        check_consumer(consumer)?;
        let now = self.ctx.now();
        retry_contention(|| async move {
            let txn = self.ctx.begin_write().await?;
            let result = async {
                let cursor = self.cursor(&txn, consumer, now).await?;
                if seq > cursor.delivered_seq {
                    return Err(Error::conflict(
                        "event_consumer",
                        format!(
                            "consumer {consumer:?} was handed events up to {} only, not {seq}",
                            cursor.delivered_seq
                        ),
                    ));
                }
                if seq <= cursor.acked_seq {
                    return Ok(());
                }
                let done = seq == cursor.delivered_seq;
                let mut row: event_consumer::ActiveModel = cursor.into();
                row.acked_seq = Set(seq);
                if done {
                    row.lease_until = Set(None);
                }
                row.updated_at = Set(now);
                crate::store::repo::update_owned(&txn, row).await?;
                Ok(())
            }
            .await;
            finish(txn, result).await
        })
        .await
    }
}

/// The payload of `approval.requested`, `approval.decided`,
/// `approval.expired` and `approval.escalated` (version 1): the request as it
/// stands after the change.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct ApprovalPayload {
    /// The approval request.
    pub approval_request_id: crate::id::ApprovalRequestId,
    /// What it is about.
    pub subject_kind: crate::entity::approval_request::ApprovalSubjectKind,
    /// The subject's id (a purchase intent, ...).
    pub subject_id: uuid::Uuid,
    /// The requesting agent.
    pub agent_id: Option<crate::id::AgentId>,
    /// `pending`, `approved`, `rejected`, `expired` or `cancelled`.
    pub status: crate::entity::approval_request::ApprovalStatus,
    /// How votes combine.
    pub rule: crate::entity::approval_request::ApprovalRule,
    /// Approvals needed.
    pub required_approvals: i32,
    /// Who may vote.
    pub eligible_approvers: Vec<crate::id::UserId>,
    /// When it expires undecided.
    pub expires_at: DateTime<Utc>,
    /// When it escalates (or escalated).
    pub escalate_at: Option<DateTime<Utc>>,
    /// For `approval.escalated`: the role whose members became eligible.
    pub escalated_to_role: Option<crate::id::RoleId>,
    /// The reason codes of the policies that asked for approval.
    pub reason_codes: Vec<String>,
}

/// The event `event_type` announcing `request`'s new state.
pub(crate) fn approval_event(
    event_type: &'static str,
    request: &crate::entity::approval_request::Model,
    escalated_to_role: Option<crate::id::RoleId>,
) -> Result<NewEvent> {
    let payload = ApprovalPayload {
        approval_request_id: request.id,
        subject_kind: request.subject_kind,
        subject_id: request.subject_id,
        agent_id: request.agent_id,
        status: request.status,
        rule: request.rule,
        required_approvals: request.required_approvals,
        eligible_approvers: request.eligible_approvers.0.clone(),
        expires_at: request.expires_at,
        escalate_at: request.escalate_at,
        escalated_to_role,
        reason_codes: request
            .reasons
            .0
            .iter()
            .map(|r| r.code().to_owned())
            .collect(),
    };
    NewEvent::new(
        event_type,
        "approval_request",
        Some(request.id.as_uuid()),
        &payload,
    )
}

/// The payload of `purchase.rejected` (version 1).
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct PurchaseRejectedPayload {
    /// The rejected purchase intent.
    pub purchase_intent_id: crate::id::PurchaseIntentId,
    /// The agent that asked, if it exists.
    pub agent_id: Option<crate::id::AgentId>,
    /// The amount asked for, as a decimal string.
    pub amount: rust_decimal::Decimal,
    /// Its currency.
    pub currency: crate::money::Currency,
    /// The merchant (or model, or tool) label.
    pub merchant: String,
    /// Every reason code, in order.
    pub reason_codes: Vec<String>,
}

/// The `purchase.rejected` event of `intent`.
pub(crate) fn rejection_event(
    intent: &crate::entity::purchase_intent::Model,
    reasons: &[crate::policy::Reason],
) -> Result<NewEvent> {
    NewEvent::new(
        types::PURCHASE_REJECTED,
        "purchase_intent",
        Some(intent.id.as_uuid()),
        &PurchaseRejectedPayload {
            purchase_intent_id: intent.id,
            agent_id: intent.agent_id,
            amount: intent.amount.get(),
            currency: intent.currency,
            merchant: intent.merchant_name.clone(),
            reason_codes: reasons.iter().map(|r| r.code().to_owned()).collect(),
        },
    )
}

/// The payload of `budget.threshold_crossed` (version 1).
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct ThresholdPayload {
    /// The budget.
    pub budget_id: crate::id::BudgetId,
    /// The window (period instance) whose use crossed the threshold.
    pub budget_window_id: crate::id::BudgetWindowId,
    /// The window's start.
    pub period_start: DateTime<Utc>,
    /// The window's end (`None` for a lifetime budget).
    pub period_end: Option<DateTime<Utc>>,
    /// The threshold crossed, in percent of the limit.
    pub threshold_percent: u32,
    /// The window's limit.
    pub limit: rust_decimal::Decimal,
    /// Spent plus reserved in the window once the crossing change committed.
    pub used: rust_decimal::Decimal,
    /// The budget's currency.
    pub currency: crate::money::Currency,
}

/// The `budget.threshold_crossed` events of adding `amount` to each of
/// `windows` (locked, as they stand before the addition): one per threshold
/// of the budget that the use reaches now and did not reach before. Each
/// carries a dedup key of its window and threshold, so it is written at most
/// once per window.
pub(crate) fn threshold_events(
    windows: &[(
        crate::entity::budget::Model,
        crate::entity::budget_window::Model,
    )],
    amount: rust_decimal::Decimal,
) -> Result<Vec<NewEvent>> {
    let moves: Vec<_> = windows.iter().map(|(b, w)| (b, w, amount)).collect();
    threshold_crossings(&moves)
}

/// [`threshold_events`] for windows that each grow by their own amount (a
/// settlement grows each window by the charge less what its line held).
pub(crate) fn threshold_crossings(
    moves: &[(
        &crate::entity::budget::Model,
        &crate::entity::budget_window::Model,
        rust_decimal::Decimal,
    )],
) -> Result<Vec<NewEvent>> {
    use crate::entity::json::DEFAULT_ALERT_THRESHOLDS;
    let mut out = Vec::new();
    for &(budget, window, amount) in moves {
        let limit = window.limit_amount.get();
        let before = window.spent.get() + window.reserved.get();
        let Some(after) = before.checked_add(amount) else {
            continue;
        };
        let defaults = DEFAULT_ALERT_THRESHOLDS.to_vec();
        let thresholds = budget.alert_thresholds.as_ref().map_or(&defaults, |t| &t.0);
        for &percent in thresholds {
            let Some(level) = limit.checked_mul(rust_decimal::Decimal::from(percent)) else {
                continue;
            };
            let level = level / rust_decimal::Decimal::ONE_HUNDRED;
            if !(limit > rust_decimal::Decimal::ZERO && before < level && after >= level) {
                continue;
            }
            let mut event = NewEvent::new(
                types::BUDGET_THRESHOLD_CROSSED,
                "budget_window",
                Some(window.id.as_uuid()),
                &ThresholdPayload {
                    budget_id: budget.id,
                    budget_window_id: window.id,
                    period_start: window.period_start,
                    period_end: window.period_end,
                    threshold_percent: percent,
                    limit,
                    used: after,
                    currency: budget.currency,
                },
            )?;
            event.dedup_key = Some(format!("budget.threshold_crossed:{}:{percent}", window.id));
            out.push(event);
        }
    }
    Ok(out)
}

/// Appends each of `events` (see [`emit`]).
pub(crate) async fn emit_all(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    events: Vec<NewEvent>,
    now: DateTime<Utc>,
) -> Result<()> {
    for event in events {
        emit(conn, tenant, event, now).await?;
    }
    Ok(())
}

/// The payload of `reservation.expired` (version 1).
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct ReservationExpiredPayload {
    /// The reservation whose hold returned to the budgets.
    pub reservation_id: crate::id::ReservationId,
    /// The agent it was held for.
    pub agent_id: Option<crate::id::AgentId>,
    /// The purchase intent it was held for.
    pub purchase_intent_id: Option<crate::id::PurchaseIntentId>,
    /// The amount that was held.
    pub amount: rust_decimal::Decimal,
    /// Its currency.
    pub currency: crate::money::Currency,
}

/// The `reservation.expired` event of `reservation`.
pub(crate) fn reservation_expired_event(
    reservation: &crate::entity::reservation::Model,
) -> Result<NewEvent> {
    NewEvent::new(
        types::RESERVATION_EXPIRED,
        "reservation",
        Some(reservation.id.as_uuid()),
        &ReservationExpiredPayload {
            reservation_id: reservation.id,
            agent_id: reservation.agent_id,
            purchase_intent_id: reservation.purchase_intent_id,
            amount: reservation.amount.get(),
            currency: reservation.currency,
        },
    )
}

/// One budget a settled charge went over, in [`OverspentPayload`].
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct Overspend {
    /// The budget.
    pub budget_id: crate::id::BudgetId,
    /// What was posted beyond its limit.
    pub amount: rust_decimal::Decimal,
}

/// The payload of `budget.overspent` (version 1).
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct OverspentPayload {
    /// The reservation the charge settled.
    pub reservation_id: crate::id::ReservationId,
    /// The settled amount.
    pub charged: rust_decimal::Decimal,
    /// Its currency.
    pub currency: crate::money::Currency,
    /// Every budget it went over, with the excess.
    pub overspend: Vec<Overspend>,
}

/// The `budget.overspent` event of a charge of `charged` on `reservation`.
pub(crate) fn overspent_event(
    reservation: crate::id::ReservationId,
    charged: rust_decimal::Decimal,
    currency: crate::money::Currency,
    overspend: &[(crate::id::BudgetId, crate::money::Amount)],
) -> Result<NewEvent> {
    NewEvent::new(
        types::BUDGET_OVERSPENT,
        "reservation",
        Some(reservation.as_uuid()),
        &OverspentPayload {
            reservation_id: reservation,
            charged,
            currency,
            overspend: overspend
                .iter()
                .map(|(budget_id, amount)| Overspend {
                    budget_id: *budget_id,
                    amount: amount.get(),
                })
                .collect(),
        },
    )
}

/// The payload of `key.revoked` (version 1).
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct KeyRevokedPayload {
    /// The revoked key.
    pub api_key_id: crate::id::ApiKeyId,
    /// The agent it belonged to.
    pub agent_id: crate::id::AgentId,
    /// Its display prefix.
    pub prefix: String,
    /// When it was revoked.
    pub revoked_at: DateTime<Utc>,
}

/// The payload of `run.killed` (version 1).
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct RunKilledPayload {
    /// The run.
    pub run_id: crate::id::RunId,
    /// Its agent.
    pub agent_id: Option<crate::id::AgentId>,
    /// The member who killed it.
    pub killed_by: crate::id::UserId,
    /// Why.
    pub reason: String,
    /// The holds released with it.
    pub released: Vec<crate::id::ReservationId>,
    /// When it was killed.
    pub killed_at: DateTime<Utc>,
}
