//! Checks on what a reservation call is given: idempotency keys, refund ids,
//! settled and positive amounts, and a replayed request against the first.

use super::*;

pub(super) fn validate_key(key: &str) -> Result<()> {
    if key.trim().is_empty() {
        return Err(Error::invalid("idempotency_key", "must not be empty"));
    }
    if key.chars().count() > MAX_IDEMPOTENCY_KEY_LEN {
        return Err(Error::invalid(
            "idempotency_key",
            format!(
                "is {} characters long; at most {MAX_IDEMPOTENCY_KEY_LEN} are allowed",
                key.chars().count()
            ),
        ));
    }
    Ok(())
}

/// A settled amount: zero or positive, storable. Zero settles a hold with
/// nothing spent.
pub(crate) fn settled_amount(field: &str, money: &Money) -> Result<Amount> {
    if money.amount() < Decimal::ZERO {
        return Err(Error::invalid(
            field,
            format!("must not be negative, got {}", money.amount()),
        ));
    }
    Amount::new(money.amount()).map_err(|e| Error::invalid(field, e))
}

/// Longest refund id, in characters: the width of `refunds.provider_refund_id`
/// and of the ledger's `reference`.
pub const MAX_REFUND_ID_LEN: usize = bursar_migration::widths::REFERENCE as usize;

pub(super) fn validate_refund_id(refund_id: &str) -> Result<&str> {
    let trimmed = refund_id.trim();
    if trimmed.is_empty() || refund_id.chars().count() > MAX_REFUND_ID_LEN {
        return Err(Error::invalid(
            "refund_id",
            format!(
                "must be 1 to {MAX_REFUND_ID_LEN} characters and not blank, got {}",
                refund_id.chars().count()
            ),
        ));
    }
    Ok(trimmed)
}

/// A positive, storable amount.
pub(crate) fn positive_amount(field: &str, money: &Money) -> Result<Amount> {
    if money.amount() <= Decimal::ZERO {
        return Err(Error::invalid(
            field,
            format!("must be positive, got {}", money.amount()),
        ));
    }
    Amount::new(money.amount()).map_err(|e| Error::invalid(field, e))
}

/// A retried reserve must be the same request: same amount and currency, same
/// agent and run, same purchase intent. The conflict says no more than that,
/// so a key never reveals another request's details.
pub(super) fn check_replay(found: &reservation::Model, request: &ReserveRequest) -> Result<()> {
    let same = found.amount.get() == request.amount.amount()
        && found.currency == request.amount.currency()
        && found.agent_id == request.principal.map(|p| p.agent_id)
        && found.run_id == request.principal.and_then(|p| p.run_id)
        && found.purchase_intent_id == request.purchase_intent_id;
    if !same {
        return Err(Error::conflict(
            "reservation",
            format!(
                "idempotency key {:?} was first used for a different request",
                found.idempotency_key.as_deref().unwrap_or_default()
            ),
        ));
    }
    Ok(())
}
