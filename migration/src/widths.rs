//! The width of every text column whose content comes from a caller, in
//! characters (PostgreSQL's `varchar(n)` counts characters, not bytes).
//!
//! bursar validates each input against the same constant before writing it
//! (`bursar::store::MAX_MERCHANT_LEN` is [`MERCHANT`], and so on), so an
//! over-long text is the same `Error::Invalid` naming the field on every
//! backend, never a database error on one and accepted on another.

/// A merchant's display name, normalized name and domain (`merchants`,
/// `purchase_intents`, `blocked_attempts`, `transactions`).
pub const MERCHANT: u32 = 255;
/// An idempotency key (`reservations`, `purchase_intents`), and a provider's
/// refund id, which the ledger keeps as its `reference`.
pub const IDEMPOTENCY_KEY: u32 = 255;
/// A provider's id for a card, a charge or an authorization (`virtual_cards`,
/// `transactions`).
pub const PROVIDER_ID: u32 = 255;
/// A ledger entry's `reference`: a refund id or another key.
pub const REFERENCE: u32 = IDEMPOTENCY_KEY;
/// A user's email address (RFC 5321's longest path is 254 characters).
pub const EMAIL: u32 = 254;
/// A user's id at an external identity provider.
pub const EXTERNAL_ID: u32 = 255;
/// The name of a user's external identity provider.
pub const AUTH_PROVIDER: u32 = 50;
/// Why a transaction needs a human's attention (`transactions.attention`);
/// written by bursar, at most this many characters.
pub const ATTENTION: u32 = 500;
/// The kind of action a purchase intent records: `purchase`, `tool_call`,
/// `llm_usage` or `custom:<name>`.
pub const ACTION_KIND: u32 = 64;
