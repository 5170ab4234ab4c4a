//! Stable reason codes.
//!
//! A decision's reasons carry one of these codes (or a policy's own code). They
//! are part of the API: hosts match on them, and they never change meaning.
//! The spending codes keep the names of the controls they reproduce.

/// The request is above the agent's per-transaction limit.
pub const OVER_TRANSACTION_LIMIT: &str = "OVER_TRANSACTION_LIMIT";
/// The request is above the tenant's maximum transaction amount.
pub const OVER_ORG_MAX_TRANSACTION: &str = "OVER_ORG_MAX_TRANSACTION";
/// A daily budget would be exceeded.
pub const DAILY_LIMIT_EXCEEDED: &str = "DAILY_LIMIT_EXCEEDED";
/// A weekly budget would be exceeded.
pub const WEEKLY_LIMIT_EXCEEDED: &str = "WEEKLY_LIMIT_EXCEEDED";
/// A monthly budget would be exceeded.
pub const MONTHLY_LIMIT_EXCEEDED: &str = "MONTHLY_LIMIT_EXCEEDED";
/// A yearly budget would be exceeded.
pub const YEARLY_LIMIT_EXCEEDED: &str = "YEARLY_LIMIT_EXCEEDED";
/// A lifetime budget would be exceeded.
pub const LIFETIME_LIMIT_EXCEEDED: &str = "LIFETIME_LIMIT_EXCEEDED";
/// A budget of the whole tenant (the organization) would be exceeded.
pub const ORG_BUDGET_EXCEEDED: &str = "ORG_BUDGET_EXCEEDED";
/// The merchant is on a block list.
pub const MERCHANT_BLOCKED: &str = "MERCHANT_BLOCKED";
/// The merchant is not on the allow list.
pub const MERCHANT_NOT_ALLOWED: &str = "MERCHANT_NOT_ALLOWED";
/// The merchant category (MCC) is blocked.
pub const CATEGORY_BLOCKED: &str = "CATEGORY_BLOCKED";
/// The agent does not exist in this tenant.
pub const AGENT_NOT_FOUND: &str = "AGENT_NOT_FOUND";
/// The agent exists but is paused or suspended.
pub const AGENT_INACTIVE: &str = "AGENT_INACTIVE";
/// The tenant is deactivated: none of its agents may act until it is reactivated.
pub const TENANT_INACTIVE: &str = "TENANT_INACTIVE";
/// No policy allowed the request and the tenant's default effect is deny.
pub const NO_MATCHING_POLICY: &str = "NO_MATCHING_POLICY";
/// Approval needed: the amount is above the agent's approval threshold.
pub const OVER_THRESHOLD: &str = "OVER_THRESHOLD";
/// Approval needed: the merchant has never been seen in this tenant.
pub const NEW_VENDOR: &str = "NEW_VENDOR";
/// Approval needed: a tenant-wide guardrail asks for it.
pub const ORG_GUARDRAIL: &str = "ORG_GUARDRAIL";
/// The purchase is within the spending controls (the reason code of the `allow`
/// policy that spending controls add).
pub const WITHIN_CONTROLS: &str = "WITHIN_CONTROLS";
/// An approver rejected the request.
pub const APPROVAL_REJECTED: &str = "APPROVAL_REJECTED";
/// The approval request was cancelled by the requesting side or an admin.
pub const APPROVAL_CANCELLED: &str = "APPROVAL_CANCELLED";
/// A budget that applies to the request is kept in another currency, so the
/// request cannot be checked against it: refused rather than approved
/// unchecked.
pub const BUDGET_CURRENCY_MISMATCH: &str = "BUDGET_CURRENCY_MISMATCH";
/// The tenant requires every agent action to name an active run, and this
/// one named none.
pub const RUN_REQUIRED: &str = "RUN_REQUIRED";
/// The run's cap (cost, rounds, tokens, allowed tools or models) does not
/// admit the action; the message names the cap.
pub const RUN_LIMIT_EXCEEDED: &str = "RUN_LIMIT_EXCEEDED";
/// The run is past its deadline, or already completed or failed.
pub const RUN_EXPIRED: &str = "RUN_EXPIRED";
/// The run was killed.
pub const RUN_KILLED: &str = "RUN_KILLED";
/// No price is known for the model (or the call has no output bound), so its
/// cost cannot be estimated: refused rather than unmetered.
pub const PRICE_UNKNOWN: &str = "PRICE_UNKNOWN";
