//! Typed JSON values shared by several tables.

use std::collections::BTreeMap;

use sea_orm::FromJsonQueryResult;
use serde::{Deserialize, Serialize};

use crate::id::{BudgetId, PolicyId};
use crate::money::Amount;

/// Host-defined key/value labels (`{"env": "prod", "cost_center": "42"}`),
/// stored as a JSON object. Policies can match on them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, FromJsonQueryResult)]
#[serde(transparent)]
pub struct Metadata(pub BTreeMap<String, String>);

/// One reason a decision gave: why a request was rejected or needs approval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// Stable machine code, e.g. `OVER_THRESHOLD` or `MONTHLY_LIMIT_EXCEEDED`.
    pub code: String,
    /// Human explanation.
    pub message: String,
    /// The policy that produced the reason, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_id: Option<PolicyId>,
    /// The budget that did not fit, for budget reasons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_id: Option<BudgetId>,
    /// What remained of that budget's window, for budget reasons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<Amount>,
}

/// Every reason of a decision, in the order the decision listed them, stored
/// as a JSON array.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, FromJsonQueryResult)]
#[serde(transparent)]
pub struct ReasonList(pub Vec<Reason>);
