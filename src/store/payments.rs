//! After authorization: virtual cards for approved intents, and provider
//! webhooks that capture, release or refund the reservation behind them.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Datelike, Utc};
use rust_decimal::Decimal;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};

use crate::audit::{AuditEntry, append};
use crate::entity::audit_log::AuditStatus;
use crate::entity::purchase_intent::{self, PurchaseIntentStatus};
use crate::entity::reservation::{self, ReservationStatus};
use crate::entity::transaction::{self, TransactionStatus};
use crate::entity::virtual_card::{self, VirtualCardStatus};
use crate::id::{PurchaseIntentId, TransactionId, VirtualCardId};
use crate::money::{Amount, Money};
use crate::store::repo::Ctx;
use crate::store::reservations::{capture_in, end_hold_in, refund_in};
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

/// What [`Payments::record_transaction`] did.
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

fn rank(s: TransactionStatus) -> u8 {
    match s {
        TransactionStatus::Authorized => 0,
        TransactionStatus::Captured | TransactionStatus::Failed => 1,
        TransactionStatus::Refunded => 2,
    }
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

    /// Records a card the host's provider issued for an approved intent. Its
    /// hard limit is the amount reserved for the intent.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown intent; [`Error::Conflict`] when the
    /// intent is not approved, its reservation is no longer held, or the
    /// provider card id is already recorded; [`Error::Invalid`] for a malformed
    /// provider card.
    pub async fn issue_card(
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

    /// Asks the host's issuer for a card for an approved intent, then records
    /// it (see [`Payments::issue_card`]).
    ///
    /// # Errors
    /// As [`Payments::issue_card`], and whatever the issuer returns.
    pub async fn issue_card_with(
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

    /// Records a provider webhook, idempotently on the provider charge id:
    /// an event that does not move the charge forward (a replay, or one older
    /// than what is recorded) changes nothing and returns the recorded
    /// transaction. Moving forward: `captured` captures the reservation with
    /// the settled amount, `failed` releases it, `refunded` refunds it (by the
    /// refund id, default the charge id).
    ///
    /// # Errors
    /// [`Error::NotFound`] when neither the card nor the intent is this
    /// tenant's; [`Error::Invalid`] for a malformed event or a currency other
    /// than the reservation's; [`Error::Conflict`] from the reservation (for
    /// example a capture above the hold that no longer fits).
    pub async fn record_transaction(&self, event: TransactionEvent) -> Result<Recorded> {
        let charge_id = provider_id("provider_charge_id", &event.provider_charge_id)?;
        if event.amount.amount() < Decimal::ZERO {
            return Err(Error::invalid(
                "amount",
                format!("must not be negative, got {}", event.amount.amount()),
            ));
        }
        let amount = Amount::new(event.amount.amount()).map_err(|e| Error::invalid("amount", e))?;
        let now = self.ctx.now();
        // Two deliveries of a new charge may race to insert it: the loser
        // fails on the unique key and, on its second pass, finds the winner's.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let txn = self.ctx.begin_write().await?;
            let result = self
                .record_in(&txn, event.clone(), charge_id.clone(), amount, now)
                .await;
            match result {
                Err(Error::Conflict { .. }) if attempts < 3 => txn.rollback().await?,
                result => return crate::store::repo::finish(txn, result).await,
            }
        }
    }

    async fn record_in(
        &self,
        txn: &DatabaseTransaction,
        event: TransactionEvent,
        charge_id: String,
        amount: Amount,
        now: DateTime<Utc>,
    ) -> Result<Recorded> {
        let tenant = self.ctx.tenant;
        let new_status = match event.status {
            ChargeStatus::Authorized => TransactionStatus::Authorized,
            ChargeStatus::Captured => TransactionStatus::Captured,
            ChargeStatus::Failed => TransactionStatus::Failed,
            ChargeStatus::Refunded => TransactionStatus::Refunded,
        };
        let existing = transaction::Entity::find()
            .filter(transaction::Column::TenantId.eq(tenant))
            .filter(transaction::Column::ProviderChargeId.eq(charge_id.as_str()))
            .lock_exclusive()
            .one(txn)
            .await?;
        if let Some(current) = &existing {
            if rank(new_status) <= rank(current.status) {
                return Ok(Recorded {
                    transaction: current.clone(),
                    replayed: true,
                });
            }
        }
        // Find what the charge is for: the recorded transaction, the card, or
        // the intent the host names.
        let (intent_id, card_id) = match &existing {
            Some(t) => (t.purchase_intent_id, t.virtual_card_id),
            None => match (&event.provider_card_id, event.purchase_intent_id) {
                (Some(card), _) => {
                    let card = virtual_card::Entity::find()
                        .filter(virtual_card::Column::TenantId.eq(tenant))
                        .filter(virtual_card::Column::ProviderCardId.eq(card.as_str()))
                        .one(txn)
                        .await?
                        .ok_or_else(|| Error::not_found(VirtualCardId::ENTITY, card))?;
                    (Some(card.purchase_intent_id), Some(card.id))
                }
                (None, Some(intent)) => (Some(intent), None),
                (None, None) => {
                    return Err(Error::invalid(
                        "provider_card_id",
                        "the event names neither a card nor a purchase intent",
                    ));
                }
            },
        };
        let intent = match intent_id {
            Some(id) => Some(
                purchase_intent::Entity::find()
                    .filter(purchase_intent::Column::TenantId.eq(tenant))
                    .filter(purchase_intent::Column::Id.eq(id))
                    .one(txn)
                    .await?
                    .ok_or_else(|| Error::not_found(PurchaseIntentId::ENTITY, id))?,
            ),
            None => None,
        };
        let reservation_id = intent.as_ref().and_then(|i| i.reservation_id);
        if let Some(i) = intent
            .as_ref()
            .filter(|i| i.currency != event.amount.currency())
        {
            return Err(Error::invalid(
                "currency",
                format!(
                    "{} does not match the purchase intent's currency {}",
                    event.amount.currency(),
                    i.currency
                ),
            ));
        }
        if let Some(reservation) = reservation_id {
            match new_status {
                TransactionStatus::Authorized => {}
                TransactionStatus::Captured => {
                    capture_in(txn, tenant, reservation, event.amount, now).await?;
                }
                TransactionStatus::Failed => {
                    end_hold_in(txn, tenant, reservation, ReservationStatus::Released, now).await?;
                }
                TransactionStatus::Refunded => {
                    let refund_id = event.refund_id.clone().unwrap_or_else(|| charge_id.clone());
                    refund_in(txn, tenant, reservation, event.amount, &refund_id, now).await?;
                }
            }
        }
        let transaction = match existing {
            Some(current) => {
                let mut row: transaction::ActiveModel = current.into();
                row.status = Set(new_status);
                if new_status != TransactionStatus::Refunded {
                    row.amount = Set(amount);
                }
                if new_status == TransactionStatus::Captured {
                    row.settled_at = Set(Some(now));
                }
                row.raw_event = Set(event.raw.clone());
                row.updated_at = Set(now);
                row.update(txn).await?
            }
            None => {
                transaction::ActiveModel {
                    id: Set(TransactionId::new()),
                    tenant_id: Set(tenant),
                    purchase_intent_id: Set(intent_id),
                    virtual_card_id: Set(card_id),
                    reservation_id: Set(reservation_id),
                    provider_charge_id: Set(charge_id.clone()),
                    provider_authorization_id: Set(None),
                    amount: Set(amount),
                    currency: Set(event.amount.currency()),
                    merchant_name: Set(event.merchant_name.clone()),
                    mcc: Set(None),
                    status: Set(new_status),
                    settled_at: Set((new_status == TransactionStatus::Captured).then_some(now)),
                    raw_event: Set(event.raw.clone()),
                    created_at: Set(now),
                    updated_at: Set(now),
                }
                .insert(txn)
                .await?
            }
        };
        append(
            txn,
            tenant,
            AuditEntry::new(
                format!("transaction.{}", status_name(new_status)),
                "transaction",
            )
            .resource_id(transaction.id)
            .status(if new_status == TransactionStatus::Failed {
                AuditStatus::Error
            } else {
                AuditStatus::Success
            })
            .correlation_id(charge_id)
            .message(format!("{} {}", transaction.amount, transaction.currency)),
            now,
        )
        .await?;
        Ok(Recorded {
            transaction,
            replayed: false,
        })
    }
}

fn status_name(s: TransactionStatus) -> &'static str {
    match s {
        TransactionStatus::Authorized => "authorized",
        TransactionStatus::Captured => "captured",
        TransactionStatus::Failed => "failed",
        TransactionStatus::Refunded => "refunded",
    }
}
