//! Bounds on everything a policy or a request may contain.
//!
//! Validation refuses anything beyond them, so that hostile input cannot make
//! compilation or evaluation slow, deep or unbounded.

/// Most policies compiled together for one tenant.
pub const MAX_POLICIES: usize = 50_000;
/// Deepest nesting of `all` / `any` / `not` (the root is depth 1).
pub const MAX_CONDITION_DEPTH: usize = 12;
/// Most condition nodes in one policy (every node counts, leaves included).
pub const MAX_CONDITION_NODES: usize = 256;
/// Most entries in one list (merchants, MCC codes, tools, models, currencies, days).
pub const MAX_LIST_LEN: usize = 1_000;
/// Most ids in a policy's scope (teams + projects + agents).
pub const MAX_SCOPE_IDS: usize = 1_000;
/// Longest pattern, metadata key or value in a condition, in bytes.
pub const MAX_PATTERN_LEN: usize = 256;
/// Longest policy name, in bytes.
pub const MAX_NAME_LEN: usize = 200;
/// Longest message template, in bytes.
pub const MAX_MESSAGE_LEN: usize = 1_000;
/// Longest reason code, in bytes (codes are `[A-Z][A-Z0-9_]*`).
pub const MAX_REASON_CODE_LEN: usize = 64;
/// Largest amount threshold, exclusive: amounts must be below 10²⁰ (the store's limit).
pub const MAX_AMOUNT_INTEGER_DIGITS: u32 = 20;
/// Most decimal places of an amount threshold.
pub const MAX_AMOUNT_SCALE: u32 = 6;
/// Longest velocity window, in seconds (31 days).
pub const MAX_VELOCITY_WINDOW_SECONDS: u32 = 31 * 24 * 3600;
/// Largest JSON document [`Policy::from_json`](super::Policy::from_json) reads, in bytes.
pub const MAX_POLICY_JSON_LEN: usize = 256 * 1024;
/// Deepest JSON a policy may nest (objects and arrays each count one level):
/// serde_json's bound on JSON text, which
/// [`Policy::from_value`](super::Policy::from_value) applies to values too.
pub const MAX_POLICY_JSON_DEPTH: usize = 128;
/// Longest text field of a request, in bytes ([`Request::validate`](super::Request::validate)).
pub const MAX_REQUEST_TEXT_LEN: usize = 512;
/// Most metadata pairs on a request.
pub const MAX_METADATA_ENTRIES: usize = 64;
