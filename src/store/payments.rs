//! After authorization: virtual cards for approved intents, and provider
//! webhooks that capture, release or refund the reservation behind them.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Datelike, Utc};
use sea_orm::{
    ActiveEnum, ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QuerySelect, Set,
};
use serde::{Deserialize, Serialize};

use crate::audit::{AuditEntry, append};
use crate::entity::audit_log::AuditLevel;
use crate::entity::audit_log::AuditStatus;
use crate::entity::purchase_intent::{self, PurchaseIntentStatus};
use crate::entity::refund;
use crate::entity::reservation::{self, ReservationStatus};
use crate::entity::transaction::{self, TransactionStatus};
use crate::entity::virtual_card::{self, VirtualCardStatus};
use crate::id::{PurchaseIntentId, TransactionId, VirtualCardId};
use crate::money::{Amount, Money};
use crate::store::repo::Ctx;
use crate::store::reservations::{
    end_hold_in, intent_of, load, post_charge_in, refund_in, settled_amount,
};
use crate::{Error, Result};

/// Longest provider id (card id, charge id), in characters: the width of the
/// columns that hold it.
pub const MAX_PROVIDER_ID_LEN: usize = bursar_migration::widths::PROVIDER_ID as usize;

fn provider_id(field: &str, id: &str) -> Result<String> {
    let id = id.trim();
    if id.is_empty() || id.chars().count() > MAX_PROVIDER_ID_LEN {
        return Err(Error::invalid(
            field,
            format!("{id:?} must be 1 to {MAX_PROVIDER_ID_LEN} characters"),
        ));
    }
    Ok(id.to_owned())
}

/// A card the provider issued, as the host's [`CardIssuer`] returns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderCard {
    /// The provider's name, e.g. `"stripe"`.
    pub provider: String,
    /// The provider's card id.
    pub provider_card_id: String,
    /// Last four digits of the card number.
    pub last4: String,
    /// Expiry month, 1–12.
    pub exp_month: u32,
    /// Expiry year, e.g. 2027.
    pub exp_year: i32,
}

/// What bursar asks a card issuer for: a single-purpose card capped at the
/// amount reserved for the intent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CardRequest {
    /// The approved purchase intent.
    pub purchase_intent_id: PurchaseIntentId,
    /// The card's hard limit: the reserved amount.
    pub hard_limit: Money,
    /// The merchant the card is for.
    pub merchant_name: String,
}

/// The host's card provider (Stripe Issuing, Lithic, …). bursar never calls a
/// network itself: the host implements this and bursar records the result.
#[async_trait]
pub trait CardIssuer: Send + Sync {
    /// Issues a card for `request`.
    ///
    /// # Errors
    /// Whatever the provider reports; nothing is recorded.
    async fn issue(&self, request: &CardRequest) -> Result<ProviderCard>;
}

/// An in-memory [`CardIssuer`] for tests and examples: numbers its cards
/// `fake_card_1`, `fake_card_2`, … and remembers every request.
#[derive(Debug, Default)]
pub struct FakeCardIssuer {
    next: AtomicU64,
    issued: Mutex<Vec<CardRequest>>,
}

impl FakeCardIssuer {
    /// A fresh fake.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Every request it received.
    #[must_use]
    pub fn requests(&self) -> Vec<CardRequest> {
        self.issued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[async_trait]
impl CardIssuer for FakeCardIssuer {
    async fn issue(&self, request: &CardRequest) -> Result<ProviderCard> {
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.issued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(request.clone());
        Ok(ProviderCard {
            provider: "fake".into(),
            provider_card_id: format!("fake_card_{n}"),
            last4: format!("{:04}", n % 10_000),
            exp_month: 12,
            exp_year: 2030,
        })
    }
}

/// The status a provider webhook reports for a charge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChargeStatus {
    /// The provider authorized the charge; the money is still held.
    Authorized,
    /// The charge settled: the reservation is captured for the settled amount.
    Captured,
    /// The charge failed or was declined: the reservation is released.
    Failed,
    /// The charge was refunded (fully or partly): spent goes down.
    Refunded,
}

/// One provider webhook about a charge.
///
/// ```
/// use bursar::money::Money;
/// use bursar::store::{ChargeStatus, TransactionEvent};
/// let event = TransactionEvent::new("ch_123", ChargeStatus::Captured, Money::parse("29.50", "USD")?)
///     .card("fake_card_1");
/// # Ok::<(), bursar::money::MoneyError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransactionEvent {
    /// The provider's charge id: the idempotency key of the webhook.
    pub provider_charge_id: String,
    /// What happened.
    pub status: ChargeStatus,
    /// The amount: authorized, settled, or refunded.
    pub amount: Money,
    /// The card charged, by the provider's id.
    #[serde(default)]
    pub provider_card_id: Option<String>,
    /// The purchase intent, when the host knows it directly.
    #[serde(default)]
    pub purchase_intent_id: Option<PurchaseIntentId>,
    /// The provider's refund id, for refunds (default: the charge id).
    #[serde(default)]
    pub refund_id: Option<String>,
    /// The merchant as the provider reports it.
    #[serde(default)]
    pub merchant_name: Option<String>,
    /// The raw event, kept for reference.
    #[serde(default)]
    pub raw: Option<serde_json::Value>,
}

impl TransactionEvent {
    /// An event about `charge_id`.
    #[must_use]
    pub fn new(charge_id: impl Into<String>, status: ChargeStatus, amount: Money) -> Self {
        Self {
            provider_charge_id: charge_id.into(),
            status,
            amount,
            provider_card_id: None,
            purchase_intent_id: None,
            refund_id: None,
            merchant_name: None,
            raw: None,
        }
    }

    /// The card charged.
    #[must_use]
    pub fn card(mut self, provider_card_id: impl Into<String>) -> Self {
        self.provider_card_id = Some(provider_card_id.into());
        self
    }

    /// The purchase intent charged.
    #[must_use]
    pub fn intent(mut self, id: PurchaseIntentId) -> Self {
        self.purchase_intent_id = Some(id);
        self
    }

    /// The provider's refund id.
    #[must_use]
    pub fn refund_id(mut self, id: impl Into<String>) -> Self {
        self.refund_id = Some(id.into());
        self
    }
}

/// What [`PaymentRepository::record_transaction`] did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Recorded {
    /// The transaction as it now stands.
    pub transaction: transaction::Model,
    /// Whether the event changed nothing (a replay, or an event older than
    /// the transaction's current state).
    pub replayed: bool,
}

/// Cards and provider webhooks of one tenant. Get it from
/// [`TenantScope::payments`](crate::store::TenantScope::payments).
#[derive(Debug)]
pub struct Payments<'a> {
    ctx: Ctx<'a>,
}

impl<'a> Payments<'a> {
    pub(crate) fn new(ctx: Ctx<'a>) -> Self {
        Self { ctx }
    }

    async fn approved_intent(
        &self,
        txn: &DatabaseTransaction,
        id: PurchaseIntentId,
    ) -> Result<(purchase_intent::Model, reservation::Model)> {
        let intent = purchase_intent::Entity::find()
            .filter(purchase_intent::Column::TenantId.eq(self.ctx.tenant))
            .filter(purchase_intent::Column::Id.eq(id))
            .one(txn)
            .await?
            .ok_or_else(|| Error::not_found(PurchaseIntentId::ENTITY, id))?;
        if intent.status != PurchaseIntentStatus::Approved {
            return Err(Error::conflict(
                "purchase_intent",
                format!(
                    "purchase intent {id} is {:?}; only an approved intent gets a card",
                    intent.status
                ),
            ));
        }
        let reservation = reservation::Entity::find()
            .filter(reservation::Column::TenantId.eq(self.ctx.tenant))
            .filter(reservation::Column::Id.eq(intent.reservation_id))
            .one(txn)
            .await?
            .ok_or_else(|| {
                Error::conflict(
                    "purchase_intent",
                    format!("purchase intent {id} holds no reservation"),
                )
            })?;
        if reservation.status != ReservationStatus::Held {
            return Err(Error::conflict(
                "reservation",
                format!("the reservation of purchase intent {id} is no longer held"),
            ));
        }
        Ok((intent, reservation))
    }

    /// One try at recording an event (see [`PaymentRepository::record_transaction`]).
    async fn record_once(&self, event: &Incoming) -> Result<Recorded> {
        // Two deliveries of a new charge may race to insert it: the loser
        // fails on the unique key and, on its second pass, finds the winner's.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let txn = self.ctx.begin_write().await?;
            match self.record_in(&txn, event).await {
                Ok(Step::Done(recorded)) => {
                    txn.commit().await?;
                    return Ok(recorded);
                }
                Ok(Step::Attention(conflict)) => {
                    txn.commit().await?;
                    return Err(conflict);
                }
                Ok(Step::Raced) if attempts < 3 => crate::store::repo::discard(txn).await,
                Ok(Step::Raced) => {
                    crate::store::repo::discard(txn).await;
                    return Err(Error::conflict(
                        "transaction",
                        format!(
                            "charge {:?} is being recorded by a concurrent delivery",
                            event.charge_id
                        ),
                    ));
                }
                Err(err) => {
                    crate::store::repo::discard(txn).await;
                    return Err(err);
                }
            }
        }
    }

    async fn record_in(&self, txn: &DatabaseTransaction, incoming: &Incoming) -> Result<Step> {
        let existing = transaction::Entity::find()
            .filter(transaction::Column::TenantId.eq(self.ctx.tenant))
            .filter(transaction::Column::ProviderChargeId.eq(incoming.charge_id.as_str()))
            .lock_exclusive()
            .one(txn)
            .await?;
        match existing {
            Some(current) => self.advance(txn, current, incoming).await,
            None => self.first(txn, incoming).await,
        }
    }

    /// The first event about a charge: claims its charge id, then acts.
    async fn first(&self, txn: &DatabaseTransaction, incoming: &Incoming) -> Result<Step> {
        let tenant = self.ctx.tenant;
        let event = &incoming.event;
        let (intent_id, card_id) = match (&event.provider_card_id, event.purchase_intent_id) {
            (Some(card), _) => {
                let card = virtual_card::Entity::find()
                    .filter(virtual_card::Column::TenantId.eq(tenant))
                    .filter(virtual_card::Column::ProviderCardId.eq(card.as_str()))
                    .one(txn)
                    .await?
                    .ok_or_else(|| Error::not_found(VirtualCardId::ENTITY, card))?;
                (card.purchase_intent_id, Some(card.id))
            }
            (None, Some(intent)) => (intent, None),
            (None, None) => {
                return Err(Error::invalid(
                    "provider_card_id",
                    "the event names neither a card nor a purchase intent",
                ));
            }
        };
        let intent = purchase_intent::Entity::find()
            .filter(purchase_intent::Column::TenantId.eq(tenant))
            .filter(purchase_intent::Column::Id.eq(intent_id))
            .one(txn)
            .await?
            .ok_or_else(|| Error::not_found(PurchaseIntentId::ENTITY, intent_id))?;
        if intent.currency != event.amount.currency() {
            return Err(Error::invalid(
                "currency",
                format!(
                    "{} does not match the purchase intent's currency {}",
                    event.amount.currency(),
                    intent.currency
                ),
            ));
        }
        if event.status == ChargeStatus::Refunded {
            return Err(no_capture(&incoming.charge_id));
        }
        // Claim the charge id first (a concurrent delivery of the same charge
        // waits on the unique key), as `authorized` or `failed`; a capture is
        // then posted by `capture` below.
        let claimed_status = match event.status {
            ChargeStatus::Failed => TransactionStatus::Failed,
            _ => TransactionStatus::Authorized,
        };
        let claimed = transaction::ActiveModel {
            id: Set(TransactionId::new()),
            tenant_id: Set(tenant),
            purchase_intent_id: Set(Some(intent.id)),
            virtual_card_id: Set(card_id),
            reservation_id: Set(intent.reservation_id),
            provider_charge_id: Set(incoming.charge_id.clone()),
            provider_authorization_id: Set(None),
            amount: Set(incoming.amount),
            currency: Set(event.amount.currency()),
            merchant_name: Set(event.merchant_name.clone()),
            mcc: Set(None),
            status: Set(claimed_status),
            refunded_amount: Set(Amount::ZERO),
            attention: Set(None),
            settled_at: Set(None),
            raw_event: Set(event.raw.clone()),
            created_at: Set(incoming.now),
            updated_at: Set(incoming.now),
        }
        .insert(txn)
        .await;
        let claimed = match claimed {
            Ok(row) => row,
            Err(err) => {
                return match Error::from(err) {
                    Error::Conflict { .. } => Ok(Step::Raced),
                    other => Err(other),
                };
            }
        };
        match event.status {
            ChargeStatus::Captured => self.capture(txn, claimed, incoming).await,
            ChargeStatus::Failed => self.fail(txn, claimed, incoming).await,
            _ => {
                self.audit(txn, &claimed, incoming, None).await?;
                Ok(done(claimed, false))
            }
        }
    }

    /// A later event about a recorded charge.
    async fn advance(
        &self,
        txn: &DatabaseTransaction,
        current: transaction::Model,
        incoming: &Incoming,
    ) -> Result<Step> {
        use TransactionStatus as S;
        let same_amount = current.amount == incoming.amount;
        match (incoming.event.status, current.status) {
            (ChargeStatus::Refunded, S::Captured | S::PartiallyRefunded | S::Refunded) => {
                self.refund(txn, current, incoming).await
            }
            (ChargeStatus::Refunded, _) => Err(no_capture(&incoming.charge_id)),
            // A charge parked for attention is posted once its intent is
            // approved; until then a repeat changes nothing.
            (ChargeStatus::Captured, S::NeedsAttention) => {
                if !same_amount {
                    return self.attention(txn, current, incoming).await;
                }
                self.capture(txn, current, incoming).await
            }
            (ChargeStatus::Captured, S::Authorized | S::Failed) => {
                self.capture(txn, current, incoming).await
            }
            (ChargeStatus::Failed, S::Authorized) => self.fail(txn, current, incoming).await,
            // The same state again: a replay, unless the amount differs.
            (ChargeStatus::Captured, S::Captured | S::PartiallyRefunded | S::Refunded)
            | (ChargeStatus::Authorized, S::Authorized)
            | (ChargeStatus::Failed, S::Failed) => {
                if same_amount {
                    Ok(done(current, true))
                } else {
                    self.attention(txn, current, incoming).await
                }
            }
            // Older than what is recorded: nothing to do.
            _ => Ok(done(current, true)),
        }
    }

    /// Posts a captured charge, or parks it for attention when its intent is
    /// not approved.
    async fn capture(
        &self,
        txn: &DatabaseTransaction,
        current: transaction::Model,
        incoming: &Incoming,
    ) -> Result<Step> {
        let tenant = self.ctx.tenant;
        let now = incoming.now;
        // Lock order: the reservation row before anything it leads to.
        let reservation = match current.reservation_id {
            Some(id) => Some(load(txn, tenant, id, true).await?),
            None => None,
        };
        let intent = intent_of(txn, tenant, current.purchase_intent_id).await?;
        let approved = intent
            .as_ref()
            .is_some_and(|i| i.status == PurchaseIntentStatus::Approved);
        let mut row: transaction::ActiveModel = current.clone().into();
        row.amount = Set(incoming.amount);
        row.raw_event = Set(incoming.event.raw.clone());
        row.updated_at = Set(now);
        let overspend = match (approved, reservation) {
            (true, Some(reservation)) => {
                let posted = post_charge_in(txn, tenant, reservation, incoming.amount, now).await?;
                row.status = Set(TransactionStatus::Captured);
                row.attention = Set(None);
                row.settled_at = Set(Some(now));
                posted.overspend
            }
            _ => {
                if current.status == TransactionStatus::NeedsAttention {
                    return Ok(done(current, true));
                }
                let state = intent
                    .as_ref()
                    .map_or_else(|| "unknown".to_owned(), |i| i.status.to_value());
                row.status = Set(TransactionStatus::NeedsAttention);
                row.attention = Set(Some(attention_note(format!(
                    "captured for a purchase intent that is {state}, not approved; nothing was posted to the budgets"
                ))));
                Vec::new()
            }
        };
        let transaction = crate::store::repo::update_owned(txn, row).await?;
        self.audit(txn, &transaction, incoming, Some(&overspend))
            .await?;
        Ok(done(transaction, false))
    }

    /// A failed charge releases the hold of an approved intent on which
    /// nothing was captured yet.
    async fn fail(
        &self,
        txn: &DatabaseTransaction,
        current: transaction::Model,
        incoming: &Incoming,
    ) -> Result<Step> {
        let tenant = self.ctx.tenant;
        if let Some(id) = current.reservation_id {
            let reservation = load(txn, tenant, id, true).await?;
            let intent_approved = intent_of(txn, tenant, current.purchase_intent_id)
                .await?
                .is_some_and(|i| i.status == PurchaseIntentStatus::Approved);
            if intent_approved && reservation.status == ReservationStatus::Held {
                end_hold_in(txn, tenant, id, ReservationStatus::Released, incoming.now).await?;
            }
        }
        let mut row: transaction::ActiveModel = current.into();
        row.status = Set(TransactionStatus::Failed);
        row.raw_event = Set(incoming.event.raw.clone());
        row.updated_at = Set(incoming.now);
        let transaction = crate::store::repo::update_owned(txn, row).await?;
        self.audit(txn, &transaction, incoming, None).await?;
        Ok(done(transaction, false))
    }

    /// A refund of a captured charge, identified by its refund id.
    async fn refund(
        &self,
        txn: &DatabaseTransaction,
        current: transaction::Model,
        incoming: &Incoming,
    ) -> Result<Step> {
        let tenant = self.ctx.tenant;
        let refund_id = incoming.refund_id.as_deref().unwrap_or_default();
        let Some(reservation) = current.reservation_id else {
            return Err(no_capture(&incoming.charge_id));
        };
        // A refund id seen before: the same refund again, or a conflict.
        let known = refund::Entity::find()
            .filter(refund::Column::TenantId.eq(tenant))
            .filter(refund::Column::ProviderRefundId.eq(refund_id))
            .one(txn)
            .await?;
        if let Some(known) = known {
            if known.amount == incoming.amount && known.transaction_id == Some(current.id) {
                return Ok(done(current, true));
            }
            return self.attention(txn, current, incoming).await;
        }
        let left = current.amount.saturating_sub(current.refunded_amount);
        if incoming.amount > left {
            return Err(Error::invalid(
                "amount",
                format!(
                    "refund of {} is more than the {left} left to refund on charge {:?}",
                    incoming.amount, incoming.charge_id
                ),
            ));
        }
        refund_in(
            txn,
            tenant,
            reservation,
            incoming.event.amount,
            refund_id,
            Some(current.id),
            incoming.now,
        )
        .await?;
        let refunded = current
            .refunded_amount
            .checked_add(incoming.amount)
            .map_err(|e| Error::invalid("amount", e))?;
        let mut row: transaction::ActiveModel = current.clone().into();
        row.refunded_amount = Set(refunded);
        row.status = Set(if refunded >= current.amount {
            TransactionStatus::Refunded
        } else {
            TransactionStatus::PartiallyRefunded
        });
        row.updated_at = Set(incoming.now);
        let transaction = crate::store::repo::update_owned(txn, row).await?;
        self.audit(txn, &transaction, incoming, None).await?;
        Ok(done(transaction, false))
    }

    /// Records a conflicting delivery for attention (committed), and returns
    /// the conflict to report.
    async fn attention(
        &self,
        txn: &DatabaseTransaction,
        current: transaction::Model,
        incoming: &Incoming,
    ) -> Result<Step> {
        let what = match incoming.event.status {
            ChargeStatus::Refunded => format!(
                "refund {:?} delivered again with another amount ({} {})",
                incoming.refund_id.as_deref().unwrap_or_default(),
                incoming.amount,
                current.currency
            ),
            status => format!(
                "{} delivered again with another amount ({} {}, recorded {})",
                charge_status_name(status),
                incoming.amount,
                current.currency,
                current.amount
            ),
        };
        let id = current.id;
        let mut row: transaction::ActiveModel = current.into();
        let what = attention_note(what);
        row.attention = Set(Some(what.clone()));
        row.updated_at = Set(incoming.now);
        crate::store::repo::update_owned(txn, row).await?;
        append(
            txn,
            self.ctx.tenant,
            AuditEntry::new("transaction.conflict", "transaction")
                .resource_id(id)
                .level(AuditLevel::Warn)
                .status(AuditStatus::Error)
                .correlation_id(incoming.charge_id.clone())
                .message(what),
            incoming.now,
        )
        .await?;
        Ok(Step::Attention(Error::conflict(
            "transaction",
            format!(
                "charge {:?} was already recorded with another amount; this delivery was recorded for attention",
                incoming.charge_id
            ),
        )))
    }

    async fn audit(
        &self,
        txn: &DatabaseTransaction,
        transaction: &transaction::Model,
        incoming: &Incoming,
        overspend: Option<&[(crate::id::BudgetId, Amount)]>,
    ) -> Result<()> {
        let status = transaction.status;
        let warn =
            status == TransactionStatus::NeedsAttention || overspend.is_some_and(|o| !o.is_empty());
        let mut message = match incoming.event.status {
            ChargeStatus::Refunded => format!(
                "refund {:?} of {} {}",
                incoming.refund_id.as_deref().unwrap_or_default(),
                incoming.amount,
                transaction.currency
            ),
            _ => format!("{} {}", incoming.amount, transaction.currency),
        };
        if let Some(reason) = &transaction.attention {
            message = format!("{message}: {reason}");
        }
        append(
            txn,
            self.ctx.tenant,
            AuditEntry::new(format!("transaction.{}", status.to_value()), "transaction")
                .resource_id(transaction.id)
                .level(if warn {
                    AuditLevel::Warn
                } else {
                    AuditLevel::Info
                })
                .status(match status {
                    TransactionStatus::Failed | TransactionStatus::NeedsAttention => {
                        AuditStatus::Error
                    }
                    _ => AuditStatus::Success,
                })
                .correlation_id(incoming.charge_id.clone())
                .message(message),
            incoming.now,
        )
        .await?;
        Ok(())
    }
}

/// Payments of one tenant: virtual cards for approved purchases, and the
/// provider's charges settled against their reservations.
#[async_trait]
pub trait PaymentRepository {
    /// Records a card the host's provider issued for an approved intent. Its
    /// hard limit is the amount reserved for the intent.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown intent; [`Error::Conflict`] when the
    /// intent is not approved, its reservation is no longer held, or the
    /// provider card id is already recorded; [`Error::Invalid`] for a malformed
    /// provider card.
    async fn issue_card(
        &self,
        intent: PurchaseIntentId,
        card: ProviderCard,
    ) -> Result<virtual_card::Model>;
    /// Asks the host's issuer for a card for an approved intent, then records
    /// it (see [`PaymentRepository::issue_card`]).
    ///
    /// # Errors
    /// As [`PaymentRepository::issue_card`], and whatever the issuer returns.
    async fn issue_card_with(
        &self,
        intent: PurchaseIntentId,
        issuer: &dyn CardIssuer,
    ) -> Result<virtual_card::Model>;
    /// Records a provider webhook about a charge. A settled charge is a fact:
    /// it is recorded exactly once, whatever the order and timing of the
    /// deliveries (see `docs/budgets.md`, "Settlement").
    ///
    /// - The provider charge id identifies the charge. The same charge id with
    ///   the same status and amount is a replay and changes nothing
    ///   (`replayed: true`), as is an event older than the recorded state (an
    ///   `authorized` after a `captured`). The same charge id and status with
    ///   **another amount** is a [`Error::Conflict`]; the delivery is first
    ///   recorded for attention (the transaction's `attention`, and an audit
    ///   entry at level warning), so it is never silently dropped.
    /// - Distinct charge ids add up: a second charge against one purchase (a
    ///   split shipment) is posted on top of the first.
    /// - `captured` posts the charge against the intent's reservation, whatever
    ///   its state (held, already captured by another charge, expired or
    ///   released): on the windows of the period it was authorized in, with
    ///   what does not fit posted as overspend.
    /// - A `captured` charge for a purchase intent that is not approved
    ///   (pending approval, rejected, expired) is recorded with status
    ///   `needs_attention` and an audit entry at level warning, and moves no
    ///   money; delivered again once the intent is approved, it is posted.
    /// - `refunded` gives back part of a captured charge; the refund id
    ///   (default: the charge id) identifies the refund, so distinct refund
    ///   ids add up and the same one again changes nothing. A refund never
    ///   exceeds what the charge captured.
    /// - `failed` releases the hold of an approved intent that nothing was
    ///   captured on yet.
    ///
    /// # Errors
    /// [`Error::NotFound`] when neither the card nor the intent is this
    /// tenant's; [`Error::Invalid`] for a malformed event, a currency other than
    /// the intent's, or a refund above what is left of the charge;
    /// [`Error::Conflict`] for a conflicting repeat delivery (recorded for
    /// attention) or a refund of a charge with no recorded capture.
    async fn record_transaction(&self, event: TransactionEvent) -> Result<Recorded>;
}

#[async_trait]
impl PaymentRepository for Payments<'_> {
    #[tracing::instrument(level = "info", name = "bursar.payments.issue_card", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn issue_card(
        &self,
        intent: PurchaseIntentId,
        card: ProviderCard,
    ) -> Result<virtual_card::Model> {
        let provider = provider_id("provider", &card.provider)?;
        let card_id = provider_id("provider_card_id", &card.provider_card_id)?;
        if card.last4.len() != 4 || !card.last4.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::invalid(
                "last4",
                format!("{:?} is not four digits", card.last4),
            ));
        }
        if !(1..=12).contains(&card.exp_month) {
            return Err(Error::invalid(
                "exp_month",
                format!("{} is not a month (1-12)", card.exp_month),
            ));
        }
        let now = self.ctx.now();
        if card.exp_year < now.year() {
            return Err(Error::invalid(
                "exp_year",
                format!("{} is in the past", card.exp_year),
            ));
        }
        let txn = self.ctx.begin_write().await?;
        let result = async {
            let (intent, reservation) = self.approved_intent(&txn, intent).await?;
            let row = virtual_card::ActiveModel {
                id: Set(VirtualCardId::new()),
                tenant_id: Set(self.ctx.tenant),
                purchase_intent_id: Set(intent.id),
                agent_id: Set(intent.agent_id),
                provider: Set(provider),
                provider_card_id: Set(card_id.clone()),
                last4: Set(card.last4.clone()),
                exp_month: Set(i32::try_from(card.exp_month).unwrap_or(12)),
                exp_year: Set(card.exp_year),
                hard_limit: Set(reservation.amount),
                currency: Set(reservation.currency),
                status: Set(VirtualCardStatus::Active),
                expires_at: Set(Some(reservation.expires_at)),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(&txn)
            .await
            .map_err(|e| match Error::from(e) {
                Error::Conflict { .. } => Error::conflict(
                    "virtual_card",
                    format!("provider card {card_id:?} is already recorded"),
                ),
                other => other,
            })?;
            append(
                &txn,
                self.ctx.tenant,
                AuditEntry::new("card.issued", "virtual_card")
                    .resource_id(row.id)
                    .message(format!(
                        "card ending {} limited to {} {}",
                        row.last4, row.hard_limit, row.currency
                    )),
                now,
            )
            .await?;
            Ok(row)
        }
        .await;
        crate::store::repo::finish(txn, result).await
    }

    #[tracing::instrument(level = "info", name = "bursar.payments.issue_card_with", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn issue_card_with(
        &self,
        intent: PurchaseIntentId,
        issuer: &dyn CardIssuer,
    ) -> Result<virtual_card::Model> {
        let txn = self.ctx.begin_write().await?;
        let found = self.approved_intent(&txn, intent).await;
        txn.rollback().await?;
        let (intent_row, reservation) = found?;
        let request = CardRequest {
            purchase_intent_id: intent_row.id,
            hard_limit: Money::new(reservation.amount.get(), reservation.currency)?,
            merchant_name: intent_row.merchant_name,
        };
        let card = issuer.issue(&request).await?;
        self.issue_card(intent, card).await
    }

    #[tracing::instrument(level = "info", name = "bursar.payments.record_transaction", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn record_transaction(&self, event: TransactionEvent) -> Result<Recorded> {
        let charge_id = provider_id("provider_charge_id", &event.provider_charge_id)?;
        let amount = settled_amount("amount", &event.amount)?;
        if event.status == ChargeStatus::Refunded && amount.is_zero() {
            return Err(Error::invalid("amount", "a refund must be positive, got 0"));
        }
        let refund_id = match event.status {
            ChargeStatus::Refunded => Some(match &event.refund_id {
                Some(id) => provider_id("refund_id", id)?,
                None => charge_id.clone(),
            }),
            _ => None,
        };
        let event = Incoming {
            event,
            charge_id,
            amount,
            refund_id,
            now: self.ctx.now(),
        };
        crate::store::repo::retry_contention(|| self.record_once(&event)).await
    }
}

/// A validated webhook event.
struct Incoming {
    event: TransactionEvent,
    charge_id: String,
    amount: Amount,
    refund_id: Option<String>,
    now: DateTime<Utc>,
}

/// How one attempt at recording an event ended. Made once per attempt and
/// never stored: boxing would only cost an allocation.
#[allow(clippy::large_enum_variant)]
enum Step {
    /// Recorded (or recognised as a replay): commit and return it.
    Done(Recorded),
    /// A conflicting delivery was recorded for attention: commit, then return
    /// the conflict.
    Attention(Error),
    /// A concurrent delivery of the same new charge won the insert: try again.
    Raced,
}

/// An attention note cut to the width of `transactions.attention`.
fn attention_note(text: String) -> String {
    let max = bursar_migration::widths::ATTENTION as usize;
    if text.chars().count() <= max {
        text
    } else {
        text.chars().take(max).collect()
    }
}

fn done(transaction: transaction::Model, replayed: bool) -> Step {
    Step::Done(Recorded {
        transaction,
        replayed,
    })
}

fn no_capture(charge_id: &str) -> Error {
    Error::conflict(
        "transaction",
        format!("charge {charge_id:?} has no recorded capture to refund"),
    )
}

fn charge_status_name(s: ChargeStatus) -> &'static str {
    match s {
        ChargeStatus::Authorized => "authorized",
        ChargeStatus::Captured => "captured",
        ChargeStatus::Failed => "failed",
        ChargeStatus::Refunded => "refunded",
    }
}
